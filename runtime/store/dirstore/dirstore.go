// Package dirstore is a store.Bucket kept in a local directory: each object is
// a plain file at its key, so a person can open the stored images. Attributes
// the file name cannot tell (metadata, an unusual content type) sit in a
// sidecar under .attrs/; creating files is the costly part of a write, so
// objects without such attributes get no sidecar.
package dirstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/store"
)

const attrsDir = ".attrs"

// Bucket is a directory-backed bucket.
type Bucket struct {
	root string
}

var _ store.Bucket = (*Bucket)(nil)

// Open returns the bucket rooted at dir, creating the directory if needed.
func Open(dir string) (*Bucket, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving bucket directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, attrsDir), 0o750); err != nil {
		return nil, fmt.Errorf("creating bucket directory: %w", err)
	}
	return &Bucket{root: abs}, nil
}

// Root is the bucket's directory.
func (b *Bucket) Root() string { return b.root }

type attrsFile struct {
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func (b *Bucket) paths(key string) (object, attrs string, err error) {
	if err := store.ValidateKey(key); err != nil {
		return "", "", err
	}
	rel := filepath.FromSlash(key)
	return filepath.Join(b.root, rel), filepath.Join(b.root, attrsDir, rel+".json"), nil
}

// writeAtomic writes data to a temporary file beside path and renames it into
// place, so readers never see a partial file.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// Put implements store.Bucket. Attributes are written before the object so
// that a reader who sees the object also sees its attributes.
func (b *Bucket) Put(ctx context.Context, key string, body []byte, attrs store.Attrs) error {
	objPath, attrsPath, err := b.paths(key)
	if err != nil {
		return err
	}
	af := attrsFile{ContentType: attrs.ContentType, Metadata: attrs.Metadata}
	if af.ContentType == inferredType(key) {
		af.ContentType = ""
	}
	if af.ContentType == "" && len(af.Metadata) == 0 {
		if err := os.Remove(attrsPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clearing attributes of %s: %w", key, err)
		}
	} else {
		meta, err := json.Marshal(af)
		if err != nil {
			return fmt.Errorf("encoding attributes of %s: %w", key, err)
		}
		if err := writeAtomic(attrsPath, meta); err != nil {
			return fmt.Errorf("writing attributes of %s: %w", key, err)
		}
	}
	if err := writeAtomic(objPath, body); err != nil {
		return fmt.Errorf("writing object %s: %w", key, err)
	}
	return nil
}

// Get implements store.Bucket.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, store.Attrs, error) {
	objPath, _, err := b.paths(key)
	if err != nil {
		return nil, store.Attrs{}, err
	}
	body, err := os.ReadFile(objPath)
	if err != nil {
		return nil, store.Attrs{}, mapError("reading", key, err)
	}
	attrs, err := b.Head(ctx, key)
	if err != nil {
		return nil, store.Attrs{}, err
	}
	attrs.Size = int64(len(body))
	return body, attrs, nil
}

// Head implements store.Bucket.
func (b *Bucket) Head(ctx context.Context, key string) (store.Attrs, error) {
	objPath, attrsPath, err := b.paths(key)
	if err != nil {
		return store.Attrs{}, err
	}
	info, err := os.Stat(objPath)
	if err != nil {
		return store.Attrs{}, mapError("reading", key, err)
	}
	if !info.Mode().IsRegular() {
		return store.Attrs{}, nimbus.Errorf(nimbus.ENOTFOUND, "object %s not found", key)
	}
	attrs := store.Attrs{Key: key, Size: info.Size(), Modified: info.ModTime(), ContentType: inferredType(key)}
	raw, err := os.ReadFile(attrsPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return store.Attrs{}, fmt.Errorf("reading attributes of %s: %w", key, err)
	}
	if err == nil {
		var af attrsFile
		if err := json.Unmarshal(raw, &af); err != nil {
			return store.Attrs{}, fmt.Errorf("decoding attributes of %s: %w", key, err)
		}
		if af.ContentType != "" {
			attrs.ContentType = af.ContentType
		}
		attrs.Metadata = af.Metadata
	}
	return attrs, nil
}

// inferredType is the content type a key's extension implies, if any.
func inferredType(key string) string {
	return mime.TypeByExtension(path.Ext(key))
}

// List implements store.Bucket.
func (b *Bucket) List(ctx context.Context, prefix string) ([]store.Attrs, error) {
	var out []store.Attrs
	err := filepath.WalkDir(b.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != b.root {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // temporary files and attributes
		}
		if d.IsDir() {
			return ctx.Err()
		}
		rel, err := filepath.Rel(b.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, store.Attrs{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b store.Attrs) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete implements store.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	objPath, attrsPath, err := b.paths(key)
	if err != nil {
		return err
	}
	for _, p := range []string{objPath, attrsPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting %s: %w", key, err)
		}
	}
	return nil
}

func mapError(doing, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nimbus.Errorf(nimbus.ENOTFOUND, "object %s not found", key)
	}
	return fmt.Errorf("%s %s: %w", doing, key, err)
}
