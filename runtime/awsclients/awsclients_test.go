package awsclients_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/nimbus-ml/nimbus/runtime/awsclients"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   awsclients.Config
		wants []string // substrings, one per expected problem
	}{
		{"minimal", awsclients.Config{Region: "eu-west-1"}, nil},
		{"overrides", awsclients.Config{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4100", S3Endpoint: "https://s3.local:9000/"}, nil},
		{"no region", awsclients.Config{}, []string{"NIMBUS_AWS_REGION"}},
		{"every problem at once", awsclients.Config{
			Endpoint:    "127.0.0.1:4100",
			SQSEndpoint: "http://key:secret@127.0.0.1:4100",
			S3Endpoint:  "ftp://x",
			MaxAttempts: 50,
		}, []string{"NIMBUS_AWS_REGION", "NIMBUS_AWS_ENDPOINT", "NIMBUS_SQS_ENDPOINT: endpoint must not carry user info", "NIMBUS_S3_ENDPOINT", "NIMBUS_AWS_MAX_ATTEMPTS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %d problems", len(tc.wants))
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != len(tc.wants) {
				t.Fatalf("Validate = %v, want %d joined problems", err, len(tc.wants))
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want a problem mentioning %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Validate repeats a credential from an endpoint URL: %v", err)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    awsclients.Config
		wantErr bool
	}{
		{"nimbus names", map[string]string{
			"NIMBUS_AWS_REGION": "eu-west-1", "NIMBUS_AWS_ENDPOINT": "http://127.0.0.1:1", "NIMBUS_SQS_ENDPOINT": "http://127.0.0.1:2",
			"NIMBUS_S3_ENDPOINT": "http://127.0.0.1:3", "NIMBUS_AUTOSCALING_ENDPOINT": "http://127.0.0.1:4", "NIMBUS_IMDS_ENDPOINT": "http://127.0.0.1:5",
			"NIMBUS_SQS_QUERY_PROTOCOL": "true", "NIMBUS_AWS_MAX_ATTEMPTS": "3",
		}, awsclients.Config{
			Region: "eu-west-1", Endpoint: "http://127.0.0.1:1", SQSEndpoint: "http://127.0.0.1:2", S3Endpoint: "http://127.0.0.1:3",
			AutoScalingEndpoint: "http://127.0.0.1:4", IMDSEndpoint: "http://127.0.0.1:5", SQSQueryProtocol: true, MaxAttempts: 3,
		}, false},
		{"region from the SDK's variable", map[string]string{"AWS_REGION": "us-west-2"}, awsclients.Config{Region: "us-west-2"}, false},
		{"unparsable", map[string]string{"NIMBUS_SQS_QUERY_PROTOCOL": "maybe", "NIMBUS_AWS_MAX_ATTEMPTS": "lots"}, awsclients.Config{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := awsclients.ConfigFromEnv(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("ConfigFromEnv error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("ConfigFromEnv = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestLoad goes through the SDK's default chain, so it controls the
// environment and cannot run in parallel.
func TestLoad(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()

	if _, err := awsclients.Load(ctx, awsclients.Config{}); err == nil {
		t.Fatal("Load accepted a config without a region")
	}
	c := awsclients.Config{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4566", SQSQueryProtocol: true, MaxAttempts: 7}
	cfg, err := awsclients.Load(ctx, c)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region %q, want eu-west-1", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil || creds.AccessKeyID != "AKIDENV" {
		t.Errorf("credentials %q, %v; want the environment's", creds.AccessKeyID, err)
	}

	clients, err := awsclients.New(ctx, c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sqsOpts := clients.SQS.Options()
	if _, ok := sqsOpts.Protocol.(*awsquery.Protocol); !ok {
		t.Errorf("SQS protocol %T, want the Query protocol", sqsOpts.Protocol)
	}
	if got := sqsOpts.Retryer.MaxAttempts(); got != 7 {
		t.Errorf("SQS retryer allows %d attempts, want 7", got)
	}
	if aws.ToString(sqsOpts.BaseEndpoint) != c.Endpoint {
		t.Errorf("SQS endpoint %q, want %q", aws.ToString(sqsOpts.BaseEndpoint), c.Endpoint)
	}
	s3Opts := clients.S3.Options()
	if !s3Opts.UsePathStyle || s3Opts.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired {
		t.Errorf("S3 path style %v, checksums %v; want path style and checksums only when required",
			s3Opts.UsePathStyle, s3Opts.RequestChecksumCalculation)
	}
	if got := clients.AutoScaling.Options().Retryer.MaxAttempts(); got != 7 {
		t.Errorf("Auto Scaling retryer allows %d attempts, want 7", got)
	}

	plain, err := awsclients.New(ctx, awsclients.Config{Region: "eu-west-1"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if o := plain.S3.Options(); o.UsePathStyle || o.BaseEndpoint != nil {
		t.Errorf("S3 without override: path style %v endpoint %v, want virtual-hosted AWS", o.UsePathStyle, o.BaseEndpoint)
	}
	if got := plain.SQS.Options().Retryer.MaxAttempts(); got != awsclients.DefaultMaxAttempts {
		t.Errorf("default attempts %d, want %d", got, awsclients.DefaultMaxAttempts)
	}
}
