// Package awsclients builds the AWS SDK clients the Nimbus backends use, from
// one Config: the region, optional endpoint overrides for AWS-compatible
// servers, and the retry policy.
//
// Credentials come only from the SDK's default chain (environment, shared
// files, SSO, or the instance profile on EC2); Config has no field for them,
// so nothing secret passes through flags, files or logs.
//
// Transient failures (throttling, 5xx, dropped connections) are retried here,
// inside the SDK, with capped exponential backoff and jitter; the adapters do
// not retry again, and report what is left with nimbus.EUNAVAILABLE (see
// awserr).
package awsclients

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

// Environment variables ConfigFromEnv reads.
const (
	EnvRegion              = "NIMBUS_AWS_REGION"
	EnvEndpoint            = "NIMBUS_AWS_ENDPOINT"
	EnvSQSEndpoint         = "NIMBUS_SQS_ENDPOINT"
	EnvS3Endpoint          = "NIMBUS_S3_ENDPOINT"
	EnvAutoScalingEndpoint = "NIMBUS_AUTOSCALING_ENDPOINT"
	EnvIMDSEndpoint        = "NIMBUS_IMDS_ENDPOINT"
	EnvSQSQueryProtocol    = "NIMBUS_SQS_QUERY_PROTOCOL"
	EnvMaxAttempts         = "NIMBUS_AWS_MAX_ATTEMPTS"
)

// Defaults for the retry policy.
const (
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 20 * time.Second
)

// Config says where the AWS services are and how hard to retry them. The zero
// value is not valid: Region is required.
type Config struct {
	// Region is the AWS region, e.g. "eu-west-1" (NIMBUS_AWS_REGION, falling
	// back to AWS_REGION and AWS_DEFAULT_REGION).
	Region string
	// Endpoint, when set, sends every service's requests to this base URL
	// instead of AWS (NIMBUS_AWS_ENDPOINT); for AWS-compatible servers.
	Endpoint string
	// SQSEndpoint, S3Endpoint and AutoScalingEndpoint override Endpoint for
	// one service (NIMBUS_SQS_ENDPOINT, NIMBUS_S3_ENDPOINT,
	// NIMBUS_AUTOSCALING_ENDPOINT). S3 uses path-style addressing whenever
	// its endpoint is overridden.
	SQSEndpoint         string
	S3Endpoint          string
	AutoScalingEndpoint string
	// IMDSEndpoint overrides the instance metadata service's address
	// (NIMBUS_IMDS_ENDPOINT); the SDK's AWS_EC2_METADATA_SERVICE_ENDPOINT
	// works too. Only the worker's drainer uses IMDS.
	IMDSEndpoint string
	// SQSQueryProtocol makes the SQS client speak the older Query protocol
	// instead of JSON (NIMBUS_SQS_QUERY_PROTOCOL=true), for servers such as
	// goaws that only understand Query. Real SQS accepts both.
	SQSQueryProtocol bool
	// MaxAttempts bounds the SDK's attempts per call, first one included
	// (NIMBUS_AWS_MAX_ATTEMPTS, default 5).
	MaxAttempts int
	// MaxBackoff caps the delay between attempts (default 20s).
	MaxBackoff time.Duration
	// HTTPClient, when set, replaces the SDK's HTTP client; tests use it to
	// trust an httptest TLS server.
	HTTPClient *http.Client
}

// ConfigFromEnv reads the NIMBUS_* variables named on Config through getenv
// (os.Getenv in production). It reports values it cannot parse; call Validate
// for the rest.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Region:              firstNonEmpty(getenv(EnvRegion), getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")),
		Endpoint:            getenv(EnvEndpoint),
		SQSEndpoint:         getenv(EnvSQSEndpoint),
		S3Endpoint:          getenv(EnvS3Endpoint),
		AutoScalingEndpoint: getenv(EnvAutoScalingEndpoint),
		IMDSEndpoint:        getenv(EnvIMDSEndpoint),
	}
	var errs []error
	if v := getenv(EnvSQSQueryProtocol); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a boolean: set it to true or false", EnvSQSQueryProtocol, v))
		}
		c.SQSQueryProtocol = b
	}
	if v := getenv(EnvMaxAttempts); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a whole number: set it to the attempts per AWS call, e.g. 5", EnvMaxAttempts, v))
		}
		c.MaxAttempts = n
	}
	return c, errors.Join(errs...)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Validate reports every problem with c at once, each saying how to fix it.
func (c Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, fmt.Errorf("AWS region is not set: set %s (or AWS_REGION) to the region of the queues, buckets and group, e.g. eu-west-1", EnvRegion))
	}
	for _, e := range []struct{ env, val string }{
		{EnvEndpoint, c.Endpoint},
		{EnvSQSEndpoint, c.SQSEndpoint},
		{EnvS3Endpoint, c.S3Endpoint},
		{EnvAutoScalingEndpoint, c.AutoScalingEndpoint},
		{EnvIMDSEndpoint, c.IMDSEndpoint},
	} {
		if err := validateEndpoint(e.val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.env, err))
		}
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > 20 {
		errs = append(errs, fmt.Errorf("%s=%d is out of range: use 1 to 20, or leave it unset for %d", EnvMaxAttempts, c.MaxAttempts, DefaultMaxAttempts))
	}
	if c.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("maximum retry backoff %v is negative: use a positive duration, or zero for %v", c.MaxBackoff, DefaultMaxBackoff))
	}
	return errors.Join(errs...)
}

// validateEndpoint accepts "" or an absolute http(s) URL without user info:
// a URL carrying credentials would end up in logs.
func validateEndpoint(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil {
		// The text is not repeated: it might hold a credential.
		return errors.New("endpoint is not a URL: use the form https://host:port")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("endpoint %q must be an absolute http or https URL such as http://127.0.0.1:4100", u.Redacted())
	}
	if u.User != nil {
		return errors.New("endpoint must not carry user info: credentials come only from the SDK's default chain")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("endpoint %q must not have a query or fragment: give only scheme, host, port and path", u.Redacted())
	}
	return nil
}

// Load resolves the shared SDK configuration: c's region and retry policy,
// with credentials from the default chain. It fails if c is invalid.
// Credentials are resolved lazily, on the first call that needs them.
func Load(ctx context.Context, c Config) (aws.Config, error) {
	if err := c.Validate(); err != nil {
		return aws.Config{}, err
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(c.Region),
		config.WithRetryer(c.retryer),
	}
	if c.IMDSEndpoint != "" {
		opts = append(opts, config.WithEC2IMDSEndpoint(c.IMDSEndpoint))
	}
	if c.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(c.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return cfg, nil
}

// retryer is the standard retryer (exponential backoff with jitter, a retry
// token bucket) with c's bounds.
func (c Config) retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cmpOr(c.MaxAttempts, DefaultMaxAttempts)
		o.MaxBackoff = cmpOr(c.MaxBackoff, DefaultMaxBackoff)
	})
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// endpoint returns the override for one service, if any.
func (c Config) endpoint(specific string) *string {
	if e := firstNonEmpty(specific, c.Endpoint); e != "" {
		return aws.String(e)
	}
	return nil
}

// NewSQS returns an SQS client for cfg (from Load) with c's endpoint,
// protocol and retry policy.
func NewSQS(cfg aws.Config, c Config) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		o.BaseEndpoint = c.endpoint(c.SQSEndpoint)
		o.Retryer = c.retryer()
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
		if c.SQSQueryProtocol {
			// Since v1.53 the SQS client's wire protocol is a per-client
			// option; Query is the protocol SQS spoke before JSON.
			o.Protocol = awsquery.New(schemas.AmazonSQS)
		}
	})
}

// NewS3 returns an S3 client for cfg with c's endpoint and retry policy.
func NewS3(cfg aws.Config, c Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = c.endpoint(c.S3Endpoint)
		// Compatible servers live at one host, not at bucket.host.
		o.UsePathStyle = o.BaseEndpoint != nil
		o.Retryer = c.retryer()
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
		// Checksums only where S3 requires them (not on PutObject). By
		// default the SDK sends every upload over https as aws-chunked with
		// a trailing CRC32; gofakes3 v1.2.0 stores that framing undecoded,
		// corrupting the object (s3store's tests compare the bytes). TLS and
		// SigV4 already protect the bytes in transit, so real S3 loses
		// nothing Nimbus relies on. Responses are validated on the same
		// rule, so GETs do not ask for checksums uploads never sent.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// NewAutoScaling returns an EC2 Auto Scaling client for cfg with c's
// endpoint and retry policy.
func NewAutoScaling(cfg aws.Config, c Config) *autoscaling.Client {
	return autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) {
		o.BaseEndpoint = c.endpoint(c.AutoScalingEndpoint)
		o.Retryer = c.retryer()
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
	})
}

// NewIMDS returns an instance metadata client (IMDSv2: every read carries a
// session token) for cfg, honouring c.IMDSEndpoint.
func NewIMDS(cfg aws.Config, c Config) *imds.Client {
	return imds.NewFromConfig(cfg, func(o *imds.Options) {
		if c.IMDSEndpoint != "" {
			o.Endpoint = c.IMDSEndpoint
			o.ClientEnableState = imds.ClientEnabled
		}
	})
}

// Clients holds one client per service, sharing one configuration.
type Clients struct {
	SQS         *sqs.Client
	S3          *s3.Client
	AutoScaling *autoscaling.Client
	IMDS        *imds.Client
}

// New loads the configuration and builds every client. Building a client
// makes no request, so New is cheap; a binary uses only the ones it needs.
func New(ctx context.Context, c Config) (*Clients, error) {
	cfg, err := Load(ctx, c)
	if err != nil {
		return nil, err
	}
	return &Clients{
		SQS:         NewSQS(cfg, c),
		S3:          NewS3(cfg, c),
		AutoScaling: NewAutoScaling(cfg, c),
		IMDS:        NewIMDS(cfg, c),
	}, nil
}
