package store

import (
	"strings"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
)

// MaxKeyLength bounds object keys well below every backend's limit.
const MaxKeyLength = 256

// ValidateKey rejects keys that are empty, too long, absolute, have segments
// that are empty or start with "." (so "..", and room for a backend's own
// hidden files), or use characters outside [a-zA-Z0-9/._-], so that no key
// can escape a directory bucket or surprise an S3 console.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLength {
		return nimbus.Errorf(nimbus.EINVALID, "object key %q must be 1 to %d bytes", key, MaxKeyLength)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return nimbus.Errorf(nimbus.EINVALID, "object key %q has an empty segment or one starting with '.'", key)
		}
	}
	for _, r := range key {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-", r)
		if !ok {
			return nimbus.Errorf(nimbus.EINVALID, "object key %q has character %q outside [a-zA-Z0-9/._-]", key, r)
		}
	}
	return nil
}
