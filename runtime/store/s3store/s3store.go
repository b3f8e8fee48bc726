// Package s3store is a store.Bucket on Amazon S3.
//
// Objects are written whole with PutObject, which S3 makes visible
// atomically: readers see the old object or the new one. Content type and
// user metadata travel with the object; metadata values that are not
// printable ASCII are sent as RFC 2047 encoded words, as S3 itself returns
// them, and decoded on the way back. Server-side encryption is requested per
// object when Options asks for it (the bucket's default encryption applies
// otherwise).
//
// Missing objects and buckets are nimbus.ENOTFOUND; throttling, 5xx answers
// and unreachable endpoints are nimbus.EUNAVAILABLE, after the SDK client's
// own retries (see awsclients). This package never retries on its own.
package s3store

import (
	"bytes"
	"context"
	"io"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/awsclients/awserr"
	"github.com/nimbus-ml/nimbus/runtime/store"
)

// API is the part of *s3.Client a Bucket uses.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// Options configure a Bucket. A nil *Options means the defaults.
type Options struct {
	// ServerSideEncryption, when set, is requested on every Put: "AES256"
	// (S3-managed keys) or "aws:kms". Empty leaves it to the bucket's
	// default encryption.
	ServerSideEncryption types.ServerSideEncryption
	// KMSKeyID names the KMS key for "aws:kms"; empty means the account's
	// default S3 key.
	KMSKeyID string
}

// Bucket is one S3 bucket. Its methods are safe for concurrent use.
type Bucket struct {
	api  API
	name string
	opts Options
}

var _ store.Bucket = (*Bucket)(nil)

// Open returns the bucket called name, reached through api (usually an
// *s3.Client from awsclients.NewS3). It makes no request: a missing bucket
// shows on first use as nimbus.ENOTFOUND.
func Open(api API, name string, opts *Options) (*Bucket, error) {
	if api == nil {
		return nil, nimbus.Errorf(nimbus.EINVALID, "s3store: no S3 client")
	}
	if name == "" {
		return nil, nimbus.Errorf(nimbus.EINVALID, "s3store: the bucket name is empty")
	}
	b := &Bucket{api: api, name: name}
	if opts != nil {
		b.opts = *opts
	}
	switch b.opts.ServerSideEncryption {
	case "", types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse:
	default:
		return nil, nimbus.Errorf(nimbus.EINVALID, "s3store: server-side encryption %q is not one of AES256, aws:kms, aws:kms:dsse", b.opts.ServerSideEncryption)
	}
	if b.opts.KMSKeyID != "" && b.opts.ServerSideEncryption == types.ServerSideEncryptionAes256 {
		return nil, nimbus.Errorf(nimbus.EINVALID, "s3store: a KMS key is set but encryption is AES256; use aws:kms or drop the key")
	}
	return b, nil
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// codes maps S3 error codes to Nimbus codes. HeadObject answers carry no
// body, so a missing object there is "NotFound".
var codes = awserr.Codes{
	"NoSuchKey":         nimbus.ENOTFOUND,
	"NotFound":          nimbus.ENOTFOUND,
	"NoSuchBucket":      nimbus.ENOTFOUND,
	"InvalidObjectName": nimbus.EINVALID,
	"KeyTooLongError":   nimbus.EINVALID,
	"EntityTooLarge":    nimbus.ETOOLARGE,
	"SlowDown":          nimbus.EUNAVAILABLE,
}

// Put implements store.Bucket. It blocks for one PutObject call.
func (b *Bucket) Put(ctx context.Context, key string, body []byte, attrs store.Attrs) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.name),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		Metadata:      encodeMetadata(attrs.Metadata),
	}
	if attrs.ContentType != "" {
		in.ContentType = aws.String(attrs.ContentType)
	}
	if b.opts.ServerSideEncryption != "" {
		in.ServerSideEncryption = b.opts.ServerSideEncryption
		if b.opts.KMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(b.opts.KMSKeyID)
		}
	}
	if _, err := b.api.PutObject(ctx, in); err != nil {
		return awserr.Wrap(err, codes, "putting s3://%s/%s", b.name, key)
	}
	return nil
}

// Get implements store.Bucket. It reads the whole object into memory; objects
// are small (the web tier caps uploads).
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, store.Attrs, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, store.Attrs{}, err
	}
	out, err := b.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, store.Attrs{}, awserr.Wrap(err, codes, "getting s3://%s/%s", b.name, key)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, store.Attrs{}, awserr.Wrap(err, codes, "reading s3://%s/%s", b.name, key)
	}
	return body, attrsOf(key, int64(len(body)), out.ContentType, out.Metadata, out.LastModified), nil
}

// Head implements store.Bucket with HeadObject.
func (b *Bucket) Head(ctx context.Context, key string) (store.Attrs, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.Attrs{}, err
	}
	out, err := b.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return store.Attrs{}, awserr.Wrap(err, codes, "reading attributes of s3://%s/%s", b.name, key)
	}
	return attrsOf(key, aws.ToInt64(out.ContentLength), out.ContentType, out.Metadata, out.LastModified), nil
}

func attrsOf(key string, size int64, contentType *string, md map[string]string, modified *time.Time) store.Attrs {
	return store.Attrs{
		Key:         key,
		Size:        size,
		ContentType: aws.ToString(contentType),
		Metadata:    decodeMetadata(md),
		Modified:    aws.ToTime(modified),
	}
}

// List implements store.Bucket with ListObjectsV2, following every page.
// prefix must be empty or the start of a valid key. Listed Attrs carry key,
// size and modification time only: S3 listings do not return content type
// or metadata (use Head).
func (b *Bucket) List(ctx context.Context, prefix string) ([]store.Attrs, error) {
	if prefix != "" {
		// Any valid key may follow the prefix; "x" stands in for the rest.
		if err := store.ValidateKey(prefix + "x"); err != nil {
			return nil, nimbus.Errorf(nimbus.EINVALID, "list prefix %q cannot start a valid key", prefix)
		}
	}
	var out []store.Attrs
	pages := s3.NewListObjectsV2Paginator(b.api, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.name),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awserr.Wrap(err, codes, "listing s3://%s/%s", b.name, prefix)
		}
		for _, o := range page.Contents {
			out = append(out, store.Attrs{
				Key:      aws.ToString(o.Key),
				Size:     aws.ToInt64(o.Size),
				Modified: aws.ToTime(o.LastModified),
			})
		}
	}
	// S3 already lists in key order; sorting keeps the contract even for a
	// compatible server that does not.
	slices.SortFunc(out, func(x, y store.Attrs) int { return strings.Compare(x.Key, y.Key) })
	return out, nil
}

// Delete implements store.Bucket. S3 treats deleting a missing key as
// success, as the contract asks.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	if _, err := b.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)}); err != nil {
		return awserr.Wrap(err, codes, "deleting s3://%s/%s", b.name, key)
	}
	return nil
}

// encodeMetadata lower-cases keys (S3 does too) and turns values S3 cannot
// carry in an HTTP header into RFC 2047 encoded words.
func encodeMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if !printableASCII(v) {
			v = mime.BEncoding.Encode("utf-8", v)
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

func decodeMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	var dec mime.WordDecoder
	out := make(map[string]string, len(md))
	for k, v := range md {
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
