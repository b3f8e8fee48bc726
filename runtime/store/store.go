// Package store defines the buckets Nimbus keeps images and results in.
//
// Implementations: dirstore (a local directory) and s3store (Amazon S3). Both
// pass the conformance suite in storetest. Keys are derived from job ids by
// the caller and use only [a-z0-9/._-]; implementations still reject keys that
// could escape their root.
package store

import (
	"context"
	"time"
)

// Attrs describe a stored object.
type Attrs struct {
	Key         string
	Size        int64
	ContentType string
	// Metadata holds short user metadata; keys are lower case.
	Metadata map[string]string
	Modified time.Time
}

// Bucket is a flat key-value store of whole objects. Objects are small
// (images are capped by the web tier), so values move as byte slices. All
// methods are safe for concurrent use. Missing objects give an error whose
// nimbus.ErrorCode is nimbus.ENOTFOUND.
type Bucket interface {
	// Put stores body under key, replacing any object there, atomically:
	// readers see the old object or the new one, never a part.
	Put(ctx context.Context, key string, body []byte, attrs Attrs) error
	// Get returns the object's bytes and attributes.
	Get(ctx context.Context, key string) ([]byte, Attrs, error)
	// Head returns the object's attributes without its body.
	Head(ctx context.Context, key string) (Attrs, error)
	// List returns the attributes of every object whose key starts with
	// prefix, in key order.
	List(ctx context.Context, prefix string) ([]Attrs, error)
	// Delete removes the object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}
