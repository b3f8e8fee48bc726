package classify_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nimbus-ml/nimbus/runtime/classify"
)

func sum(data string) string {
	h := sha256.Sum256([]byte(data))
	return hex.EncodeToString(h[:])
}

func TestFetcher(t *testing.T) {
	t.Parallel()
	const content = "model bytes"
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/model.onnx":
			w.Write([]byte(content))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	goodMirror := t.TempDir()
	os.WriteFile(filepath.Join(goodMirror, "model.onnx"), []byte(content), 0o644)
	badMirror := t.TempDir()
	os.WriteFile(filepath.Join(badMirror, "model.onnx"), []byte("tampered"), 0o644)

	asset := classify.Asset{Name: "model.onnx", SHA256: sum(content), URL: srv.URL + "/model.onnx"}
	tests := []struct {
		name     string
		asset    classify.Asset
		mirrors  []string
		wantErr  string
		wantHits int32 // downloads this case makes
	}{
		{"downloads and verifies", asset, nil, "", 1},
		{"mirror wins over the network", asset, []string{t.TempDir(), goodMirror}, "", 0},
		{"tampered mirror copy is refused", asset, []string{badMirror}, "has sha256", 0},
		{"wrong pin is refused", classify.Asset{Name: "model.onnx", SHA256: sum("other"), URL: asset.URL}, nil, "want " + sum("other"), 1},
		{"missing upstream", classify.Asset{Name: "x.onnx", SHA256: sum("x"), URL: srv.URL + "/gone"}, nil, "404", 1},
		{"name must be a plain file name", classify.Asset{Name: "../x", SHA256: sum("x"), URL: asset.URL}, nil, "plain file name", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			f := &classify.Fetcher{CacheDir: t.TempDir(), Mirrors: tc.mirrors}
			path, err := f.Fetch(context.Background(), tc.asset)
			if got := hits.Load() - before; got != tc.wantHits {
				t.Errorf("made %d requests, want %d", got, tc.wantHits)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Fetch error = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got, _ := os.ReadFile(path); string(got) != content {
				t.Fatalf("fetched %q, want %q", got, content)
			}
			// A second fetch is served from the cache or mirror.
			before = hits.Load()
			if _, err := f.Fetch(context.Background(), tc.asset); err != nil || hits.Load() != before {
				t.Fatalf("second Fetch: err %v, %d new requests; want a cache hit", err, hits.Load()-before)
			}
		})
	}
}
