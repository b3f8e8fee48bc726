package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients/awserr"
)

func responseError(status int, err error) error {
	return &smithy.OperationError{ServiceID: "Test", OperationName: "Op", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      err,
	}}
}

func TestCode(t *testing.T) {
	t.Parallel()
	table := awserr.Codes{"NoSuchThing": nimbus.ENOTFOUND, "ValidationError": nimbus.EBUSY}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"table entry", responseError(404, &smithy.GenericAPIError{Code: "NoSuchThing"}), nimbus.ENOTFOUND},
		{"table overrides common", responseError(400, &smithy.GenericAPIError{Code: "ValidationError"}), nimbus.EBUSY},
		{"common throttling", responseError(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), nimbus.EUNAVAILABLE},
		{"unknown 5xx", responseError(503, &smithy.GenericAPIError{Code: "Weird"}), nimbus.EUNAVAILABLE},
		{"unknown 4xx", responseError(403, &smithy.GenericAPIError{Code: "AccessDenied"}), nimbus.EINTERNAL},
		{"bare 404", responseError(404, errors.New("no body")), nimbus.ENOTFOUND},
		{"connection refused", responseError(0, &smithyhttp.RequestSendError{Err: errors.New("dial tcp: refused")}), nimbus.EUNAVAILABLE},
		{"attempts exhausted", &retry.MaxAttemptsError{Attempt: 5, Err: errors.New("reset")}, nimbus.EUNAVAILABLE},
		{"deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), nimbus.ETIMEOUT},
		{"other", errors.New("boom"), nimbus.EINTERNAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := awserr.Code(tc.err, table); got != tc.want {
				t.Errorf("Code(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestWrapKeepsCause(t *testing.T) {
	t.Parallel()
	cause := responseError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"})
	err := awserr.Wrap(cause, nil, "reading %s", "thing")
	if nimbus.ErrorCode(err) != nimbus.EUNAVAILABLE || !errors.Is(err, cause) {
		t.Fatalf("Wrap = %v (code %q), want EUNAVAILABLE wrapping the cause", err, nimbus.ErrorCode(err))
	}
	ctxErr := awserr.Wrap(fmt.Errorf("op: %w", context.Canceled), nil, "reading")
	var ne *nimbus.Error
	if !errors.Is(ctxErr, context.Canceled) || errors.As(ctxErr, &ne) {
		t.Fatalf("Wrap(canceled) = %v, want the ctx error without a Nimbus code", ctxErr)
	}
	if awserr.Wrap(nil, nil, "x") != nil {
		t.Fatal("Wrap(nil) != nil")
	}
}
