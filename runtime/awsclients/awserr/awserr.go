// Package awserr translates AWS SDK errors into Nimbus error codes, so that
// the worker, web tier and scaler decide retries from one code set whatever
// the backend.
//
// Each adapter passes a table of the service error codes it knows; anything
// the table does not name is classified by transport: throttling, 5xx
// responses and failures to reach the service are nimbus.EUNAVAILABLE, other
// 4xx responses nimbus.EINTERNAL (a request Nimbus should not have sent).
package awserr

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
)

// Codes maps AWS API error codes (as smithy.APIError.ErrorCode reports them,
// in either the JSON or the Query protocol spelling) to Nimbus codes.
type Codes map[string]string

// common holds codes every AWS service may return.
var common = Codes{
	"Throttling":                             nimbus.EUNAVAILABLE,
	"ThrottlingException":                    nimbus.EUNAVAILABLE,
	"ThrottledException":                     nimbus.EUNAVAILABLE,
	"RequestThrottled":                       nimbus.EUNAVAILABLE,
	"RequestThrottledException":              nimbus.EUNAVAILABLE,
	"TooManyRequestsException":               nimbus.EUNAVAILABLE,
	"ProvisionedThroughputExceededException": nimbus.EUNAVAILABLE,
	"SlowDown":                               nimbus.EUNAVAILABLE,
	"ServiceUnavailable":                     nimbus.EUNAVAILABLE,
	"InternalFailure":                        nimbus.EUNAVAILABLE,
	"InternalError":                          nimbus.EUNAVAILABLE,
	"RequestTimeout":                         nimbus.EUNAVAILABLE,
	"RequestTimeoutException":                nimbus.EUNAVAILABLE,
	"ValidationError":                        nimbus.EINVALID,
	"InvalidParameterValue":                  nimbus.EINVALID,
	"MissingParameter":                       nimbus.EINVALID,
}

// Code returns the Nimbus code for err: "" for nil, the table's entry for an
// API error code it names, and otherwise a code chosen from the transport
// failure. Context cancellation and deadlines are not AWS failures and keep
// their own identity: Code reports nimbus.ETIMEOUT for a deadline and
// nimbus.EINTERNAL for a cancellation, and Wrap leaves both uncoded.
func Code(err error, table Codes) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nimbus.ETIMEOUT
	}
	if errors.Is(err, context.Canceled) {
		return nimbus.EINTERNAL
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if c, ok := table[apiErr.ErrorCode()]; ok {
			return c
		}
		if c, ok := common[apiErr.ErrorCode()]; ok {
			return c
		}
	}
	// Failures to connect, and the retryer giving up for lack of retry
	// quota, mean the service is out of reach for now. The SDK reports a
	// failed send inside a ResponseError with status 0, so look for it first.
	var sendErr *smithyhttp.RequestSendError
	var quotaErr *ratelimit.QuotaExceededError
	if errors.As(err, &sendErr) || errors.As(err, &quotaErr) {
		return nimbus.EUNAVAILABLE
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		switch s := respErr.HTTPStatusCode(); {
		case s == 429 || s >= 500:
			return nimbus.EUNAVAILABLE
		case s == 404 && apiErr == nil:
			return nimbus.ENOTFOUND
		}
		return nimbus.EINTERNAL
	}
	var attemptsErr *retry.MaxAttemptsError
	if errors.As(err, &attemptsErr) {
		return nimbus.EUNAVAILABLE
	}
	return nimbus.EINTERNAL
}

// Wrap returns err described by the formatted message, with the Nimbus code
// Code chooses and err kept as the cause. A context cancellation or deadline
// is wrapped without a code, as the in-memory adapters do, so callers see
// their own ctx error through errors.Is.
func Wrap(err error, table Codes, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return nimbus.Errorf(Code(err, table), "%s: %w", msg, err)
}
