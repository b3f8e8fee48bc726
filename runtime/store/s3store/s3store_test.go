package s3store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients"
	"github.com/nimbus-ml/nimbus/runtime/store"
	"github.com/nimbus-ml/nimbus/runtime/store/s3store"
	"github.com/nimbus-ml/nimbus/runtime/store/storetest"
)

// fakeS3 is a gofakes3 server with an in-memory backend.
type fakeS3 struct {
	backend *s3mem.Backend
	client  *s3.Client
}

// mustStartFakeS3 serves gofakes3 over TLS (as production talks to S3) or
// plain HTTP, and builds the client the way production does.
func mustStartFakeS3(tb testing.TB, useTLS bool) *fakeS3 {
	tb.Helper()
	backend := s3mem.New()
	handler := gofakes3.New(backend).Server()
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(handler)
	} else {
		srv = httptest.NewServer(handler)
	}
	tb.Cleanup(srv.Close)
	return &fakeS3{backend: backend, client: mustClient(tb, srv.URL, srv.Client(), 0)}
}

func mustClient(tb testing.TB, endpoint string, hc *http.Client, maxAttempts int) *s3.Client {
	tb.Helper()
	// The checksum modes are what config.LoadDefaultConfig resolves by
	// default: the SDK would then send every upload aws-chunked with a
	// trailing CRC32, which gofakes3 stores undecoded. awsclients.NewS3 must
	// override them, and the byte comparisons in storetest prove it does.
	cfg := aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	}
	c := awsclients.Config{Region: "us-east-1", S3Endpoint: endpoint, HTTPClient: hc, MaxAttempts: maxAttempts}
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	return awsclients.NewS3(cfg, c)
}

func uniqueName(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return "nimbus-" + hex.EncodeToString(b[:])
}

func (f *fakeS3) MakeBucket(_ context.Context, t *testing.T) store.Bucket {
	t.Helper()
	return f.mustBucket(t, nil)
}

func (f *fakeS3) mustBucket(t *testing.T, opts *s3store.Options) *s3store.Bucket {
	t.Helper()
	name := uniqueName(t)
	if err := f.backend.CreateBucket(name); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	b, err := s3store.Open(f.client, name, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	return b
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		useTLS bool
	}{
		{"https", true},
		{"http", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mustStartFakeS3(t, tc.useTLS)
			storetest.RunConformance(t, func(*testing.T) storetest.Harness { return f })
		})
	}
}

func TestMetadataBeyondASCII(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	b := mustStartFakeS3(t, true).mustBucket(t, &s3store.Options{ServerSideEncryption: types.ServerSideEncryptionAes256})
	md := map[string]string{"name": "Café crème – 東京.jpg", "Mixed-Case": "plain"}
	if err := b.Put(ctx, "images/x", []byte("x"), store.Attrs{ContentType: "image/jpeg", Metadata: md}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	a, err := b.Head(ctx, "images/x")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if a.Metadata["name"] != md["name"] || a.Metadata["mixed-case"] != "plain" {
		t.Fatalf("Head metadata %q, want name %q and mixed-case %q", a.Metadata, md["name"], "plain")
	}
}

func TestListPaginates(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	b := mustStartFakeS3(t, false).mustBucket(t, nil)
	const n = 1005 // more than one ListObjectsV2 page of 1000
	for i := range n {
		if err := b.Put(ctx, "results/"+hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), nil, store.Attrs{}); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	got, err := b.List(ctx, "results/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != n {
		t.Fatalf("List returned %d objects, want %d", len(got), n)
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String()
	closed.Close() // nothing listens here now: connections are refused

	f := mustStartFakeS3(t, false)
	missingBucket, err := s3store.Open(f.client, uniqueName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	unreachable, err := s3store.Open(mustClient(t, deadURL, nil, 2), "any", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    *s3store.Bucket
		want string
	}{
		{"missing bucket", missingBucket, nimbus.ENOTFOUND},
		{"unreachable endpoint", unreachable, nimbus.EUNAVAILABLE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.b.Put(ctx, "k", []byte("x"), store.Attrs{}); nimbus.ErrorCode(err) != tc.want {
				t.Errorf("Put error %v has code %q, want %q", err, nimbus.ErrorCode(err), tc.want)
			}
			if _, err := tc.b.List(ctx, ""); nimbus.ErrorCode(err) != tc.want {
				t.Errorf("List error %v has code %q, want %q", err, nimbus.ErrorCode(err), tc.want)
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	api := mustClient(t, "http://127.0.0.1:1", nil, 1)
	tests := []struct {
		name   string
		api    s3store.API
		bucket string
		opts   *s3store.Options
	}{
		{"no client", nil, "b", nil},
		{"no bucket", api, "", nil},
		{"unknown encryption", api, "b", &s3store.Options{ServerSideEncryption: "rot13"}},
		{"kms key without kms", api, "b", &s3store.Options{ServerSideEncryption: types.ServerSideEncryptionAes256, KMSKeyID: "alias/x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s3store.Open(tc.api, tc.bucket, tc.opts); nimbus.ErrorCode(err) != nimbus.EINVALID {
				t.Errorf("Open error %v, want code %q", err, nimbus.EINVALID)
			}
		})
	}
}
