package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/web"
)

// FuzzUpload throws arbitrary file contents and names at the upload path. It
// must answer 202 or a 4xx with a JSON error, never a 5xx or a panic, and
// store nothing but images under job-id keys.
func FuzzUpload(f *testing.F) {
	var jpg bytes.Buffer
	jpeg.Encode(&jpg, image.NewGray(image.Rect(0, 0, 8, 8)), nil)
	f.Add(jpg.Bytes(), "a.jpg")
	f.Add(jpg.Bytes()[:40], "../../etc/passwd")
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00N \x00\x00N \x08\x02"), "bomb.png")
	f.Add([]byte("GIF89a"), "x.gif")
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "w.webp")
	f.Add([]byte{}, "")

	f.Fuzz(func(t *testing.T, data []byte, name string) {
		// A fresh system per input keeps executions independent and fast.
		f := newFixture(t, memqueue.New(memqueue.Options{}), web.Config{MaxUploadBytes: 1 << 20, MaxPixels: 1 << 20})
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		part, err := mw.CreateFormFile("myfile", name)
		if err != nil {
			t.Skip()
		}
		part.Write(data)
		mw.Close()
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d for %d bytes named %q: %s", rec.Code, len(data), name, rec.Body)
		}
		var resp map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d body is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusAccepted && resp["error"] == "" {
			t.Fatalf("status %d without an error message: %s", rec.Code, rec.Body)
		}
		stored, err := f.images.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range stored {
			if id := nimbus.JobID(strings.TrimPrefix(o.Key, "images/")); o.Key != id.InputKey() || id.Validate() != nil {
				t.Fatalf("input bucket holds %q, not a job's image", o.Key)
			}
		}
	})
}
