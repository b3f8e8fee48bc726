// Package storetest is the conformance suite every store.Bucket passes.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/store"
)

// Harness makes fresh, empty buckets on one backend.
type Harness interface {
	MakeBucket(ctx context.Context, t *testing.T) store.Bucket
}

// RunConformance runs every contract test against the backend.
func RunConformance(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, b store.Bucket)
	}{
		{"PutGetRoundTrip", testPutGetRoundTrip},
		{"Missing", testMissing},
		{"Overwrite", testOverwrite},
		{"ListByPrefix", testListByPrefix},
		{"Delete", testDelete},
		{"RejectsUnsafeKeys", testRejectsUnsafeKeys},
		{"ConcurrentPutsAreAtomic", testConcurrentPutsAreAtomic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t.Cleanup(cancel)
			tc.fn(ctx, t, newHarness(t).MakeBucket(ctx, t))
		})
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(ctx context.Context, t *testing.T, b store.Bucket, key string, body []byte, attrs store.Attrs) {
	t.Helper()
	if err := b.Put(ctx, key, body, attrs); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func testPutGetRoundTrip(ctx context.Context, t *testing.T, b store.Bucket) {
	tests := []struct {
		name  string
		key   string
		body  []byte
		attrs store.Attrs
	}{
		{"binary 1MiB", "images/0123456789abcdefghjkmnpqrs", randomBytes(t, 1<<20),
			store.Attrs{ContentType: "image/jpeg", Metadata: map[string]string{"name": "Maltese dog.jpg", "sha256": "abc123"}}},
		{"json", "results/x.json", []byte(`{"label":"church"}`), store.Attrs{ContentType: "application/json"}},
		{"empty", "empty", []byte{}, store.Attrs{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustPut(ctx, t, b, tc.key, tc.body, tc.attrs)
			got, attrs, err := b.Get(ctx, tc.key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, tc.body) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(tc.body))
			}
			head, err := b.Head(ctx, tc.key)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			for _, a := range []store.Attrs{attrs, head} {
				if a.Key != tc.key || a.Size != int64(len(tc.body)) {
					t.Errorf("attrs key %q size %d, want %q size %d", a.Key, a.Size, tc.key, len(tc.body))
				}
				if tc.attrs.ContentType != "" && a.ContentType != tc.attrs.ContentType {
					t.Errorf("content type %q, want %q", a.ContentType, tc.attrs.ContentType)
				}
				for k, v := range tc.attrs.Metadata {
					if a.Metadata[k] != v {
						t.Errorf("metadata[%q] = %q, want %q", k, a.Metadata[k], v)
					}
				}
				if a.Modified.IsZero() {
					t.Error("Modified is zero")
				}
			}
		})
	}
}

func testMissing(ctx context.Context, t *testing.T, b store.Bucket) {
	if _, _, err := b.Get(ctx, "nope"); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
		t.Errorf("Get(missing) error %v has code %q, want %q", err, nimbus.ErrorCode(err), nimbus.ENOTFOUND)
	}
	if _, err := b.Head(ctx, "nope/deeper"); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
		t.Errorf("Head(missing) error %v has code %q, want %q", err, nimbus.ErrorCode(err), nimbus.ENOTFOUND)
	}
}

func testOverwrite(ctx context.Context, t *testing.T, b store.Bucket) {
	mustPut(ctx, t, b, "k", []byte("first version"), store.Attrs{Metadata: map[string]string{"v": "1"}})
	mustPut(ctx, t, b, "k", []byte("second"), store.Attrs{Metadata: map[string]string{"v": "2"}})
	got, attrs, err := b.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(got) != "second" || attrs.Metadata["v"] != "2" {
		t.Fatalf("Get = %q metadata %v, want %q with v=2", got, attrs.Metadata, "second")
	}
}

func testListByPrefix(ctx context.Context, t *testing.T, b store.Bucket) {
	for _, k := range []string{"results/b.json", "images/a", "results/a.json", "resultsx"} {
		mustPut(ctx, t, b, k, []byte(k), store.Attrs{})
	}
	got, err := b.List(ctx, "results/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, a := range got {
		keys = append(keys, a.Key)
		if a.Size != int64(len(a.Key)) {
			t.Errorf("List size of %q = %d, want %d", a.Key, a.Size, len(a.Key))
		}
	}
	if want := "[results/a.json results/b.json]"; fmt.Sprint(keys) != want {
		t.Fatalf("List(results/) = %v, want %s", keys, want)
	}
	if all, err := b.List(ctx, ""); err != nil || len(all) != 4 {
		t.Fatalf("List(\"\") = %d objects, %v; want 4", len(all), err)
	}
}

func testDelete(ctx context.Context, t *testing.T, b store.Bucket) {
	mustPut(ctx, t, b, "gone/soon", []byte("x"), store.Attrs{})
	if err := b.Delete(ctx, "gone/soon"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Head(ctx, "gone/soon"); nimbus.ErrorCode(err) != nimbus.ENOTFOUND {
		t.Fatalf("Head after Delete: %v, want not found", err)
	}
	if err := b.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
}

func testRejectsUnsafeKeys(ctx context.Context, t *testing.T, b store.Bucket) {
	for _, key := range []string{"", "../escape", "a/../../escape", "/abs", "a//b", "sp ace", "trailing/", "back\\slash"} {
		if err := b.Put(ctx, key, []byte("x"), store.Attrs{}); nimbus.ErrorCode(err) != nimbus.EINVALID {
			t.Errorf("Put(%q) error %v, want code %q", key, err, nimbus.EINVALID)
		}
		if _, _, err := b.Get(ctx, key); nimbus.ErrorCode(err) != nimbus.EINVALID {
			t.Errorf("Get(%q) error %v, want code %q", key, err, nimbus.EINVALID)
		}
	}
}

func testConcurrentPutsAreAtomic(ctx context.Context, t *testing.T, b store.Bucket) {
	versions := [][]byte{bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 256<<10)}
	mustPut(ctx, t, b, "race", versions[0], store.Attrs{})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- b.Put(ctx, "race", versions[i%2], store.Attrs{})
		}()
		go func() {
			defer wg.Done()
			got, _, err := b.Get(ctx, "race")
			if err == nil && !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
				err = fmt.Errorf("Get during concurrent Puts returned %d bytes matching neither version", len(got))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
