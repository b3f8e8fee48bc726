package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/store"
	"github.com/nimbus-ml/nimbus/runtime/store/dirstore"
	"github.com/nimbus-ml/nimbus/runtime/web"
)

// downQueue is a queue whose service is unreachable.
type downQueue struct{ queue.Queue }

var errDown = errors.New("connection refused")

func (downQueue) Send(context.Context, []byte) (string, error) { return "", errDown }
func (downQueue) Depth(context.Context) (queue.Depth, error)   { return queue.Depth{}, errDown }

type fixture struct {
	handler http.Handler
	images  store.Bucket
}

func newFixture(t *testing.T, input queue.Queue, cfg web.Config) fixture {
	t.Helper()
	root := t.TempDir()
	images, err := dirstore.Open(filepath.Join(root, "input"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := dirstore.Open(filepath.Join(root, "output"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &web.Server{
		Input: input, Images: images, Results: results,
		Dispatcher: web.NewDispatcher(memqueue.New(memqueue.Options{}), nil), Config: cfg,
	}
	return fixture{handler: srv.Handler(), images: images}
}

func upload(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	var img bytes.Buffer
	png.Encode(&img, image.NewGray(image.Rect(0, 0, 16, 16)))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, _ := mw.CreateFormFile("myfile", "grey.png")
	w.Write(img.Bytes())
	mw.Close()
	req := httptest.NewRequest(http.MethodPost, path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) (msg string, id nimbus.JobID) {
	t.Helper()
	var e struct {
		Error string
		ID    nimbus.JobID
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("status %d body %q is not a JSON error", rec.Code, rec.Body)
	}
	return e.Error, e.ID
}

func TestServerRefusesWhatItCannotFinish(t *testing.T) {
	t.Parallel()
	t.Run("saturated", func(t *testing.T) {
		f := newFixture(t, memqueue.New(memqueue.Options{}), web.Config{MaxPending: 1})
		if rec := upload(t, f.handler, "/v1/jobs"); rec.Code != http.StatusAccepted {
			t.Fatalf("first upload: status %d %s", rec.Code, rec.Body)
		}
		rec := upload(t, f.handler, "/v1/jobs")
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("second upload: status %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
		}
		decodeError(t, rec)
	})
	t.Run("queue down", func(t *testing.T) {
		f := newFixture(t, downQueue{}, web.Config{})
		rec := upload(t, f.handler, "/classify")
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("status %d, want 503 with Retry-After", rec.Code)
		}
		if msg, _ := decodeError(t, rec); msg == errDown.Error() {
			t.Errorf("error %q leaks the internal cause", msg)
		}
		// Nothing half-accepted stays behind.
		if left, _ := f.images.List(context.Background(), ""); len(left) != 0 {
			t.Fatalf("input bucket keeps %d objects of a refused upload", len(left))
		}
		ready := httptest.NewRecorder()
		f.handler.ServeHTTP(ready, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if ready.Code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz: status %d, want 503", ready.Code)
		}
	})
	t.Run("no result in time", func(t *testing.T) {
		f := newFixture(t, memqueue.New(memqueue.Options{}), web.Config{WaitTimeout: 100 * time.Millisecond})
		rec := upload(t, f.handler, "/classify")
		if rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("status %d, want 504", rec.Code)
		}
		_, id := decodeError(t, rec)
		if id == "" {
			t.Fatal("504 carries no job id to fetch the result with later")
		}
		job := httptest.NewRecorder()
		f.handler.ServeHTTP(job, httptest.NewRequest(http.MethodGet, "/v1/jobs/"+string(id), nil))
		var res nimbus.Result
		json.Unmarshal(job.Body.Bytes(), &res)
		if job.Code != http.StatusOK || res.Status != nimbus.StatusQueued || res.Name != "grey.png" {
			t.Fatalf("GET job: status %d %+v, want 200 queued grey.png", job.Code, res)
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		f := newFixture(t, memqueue.New(memqueue.Options{}), web.Config{})
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nope", nil))
		if rec.Code != http.StatusNotFound {
			t.Fatalf("status %d, want 404", rec.Code)
		}
		decodeError(t, rec)
	})
}
