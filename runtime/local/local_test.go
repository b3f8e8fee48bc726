package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/classify"
	"github.com/nimbus-ml/nimbus/runtime/classify/classifytest"
	"github.com/nimbus-ml/nimbus/runtime/local"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
	"github.com/nimbus-ml/nimbus/runtime/web"
)

// system is a running local system and its data directory.
type system struct {
	url  string
	data string
}

// mustStart runs a local system on a free loopback port until the test ends.
func mustStart(t testing.TB, c *classify.Classifier, data string, policy scaler.Policy) system {
	t.Helper()
	sys, err := local.Start(local.Config{
		Addr: "127.0.0.1:0", DataDir: data, Classifier: c, Policy: policy,
		ScaleInterval: 200 * time.Millisecond, Web: web.Config{WaitTimeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("local system: %v", err)
		}
	})
	return system{url: sys.URL, data: data}
}

func fastPolicy() scaler.Policy {
	p := scaler.DefaultPolicy()
	p.ScaleInAfter = 2 * time.Second
	return p
}

// form builds a multipart body with one file per (field, name, data).
func form(t testing.TB, files ...[3]string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		w, err := mw.CreateFormFile(f[0], f[1])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f[2]))
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func post(t testing.TB, url string, body io.Reader, contentType string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, contentType, body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestPhotosGetTheirClassOverHTTP(t *testing.T) {
	c := classifytest.MustOpen(t, 0)
	sys := mustStart(t, c, t.TempDir(), fastPolicy())
	dir := classifytest.PhotosDir(t)
	for _, p := range classifytest.Expected() {
		t.Run(p.File, func(t *testing.T) {
			body, ct := form(t, [3]string{"myfile", p.File, readFile(t, filepath.Join(dir, p.File))})
			status, raw := post(t, sys.url+"/classify", body, ct)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, raw)
			}
			var res nimbus.Result
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatal(err)
			}
			var labels []string
			for _, pr := range res.Top5 {
				labels = append(labels, pr.Label)
			}
			if !classifytest.Matches(labels, p.Labels, p.Within) || res.Name != p.File {
				t.Fatalf("%s: top-5 %q, want one of %q within %d", res.Name, labels, p.Labels, p.Within)
			}
			if res.Label != labels[0] || res.Timings.InferenceMs <= 0 {
				t.Fatalf("label %q, timings %+v", res.Label, res.Timings)
			}
		})
	}
}

func TestImageNet100From100ConcurrentClients(t *testing.T) {
	c := classifytest.MustOpen(t, 0)
	sys := mustStart(t, c, t.TempDir(), fastPolicy())
	dir := classifytest.ImageNet100Dir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 100 {
		t.Fatalf("%s holds %d files, want 100", dir, len(entries))
	}
	type answer struct {
		file, label string
		status      int
	}
	answers := make(chan answer, len(entries))
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Go(func() {
			body, ct := form(t, [3]string{"myfile", e.Name(), readFile(t, filepath.Join(dir, e.Name()))})
			req, _ := http.NewRequest(http.MethodPost, sys.url+"/", body)
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Accept", "text/plain")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", e.Name(), err)
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			answers <- answer{e.Name(), string(raw), resp.StatusCode}
		})
	}
	wg.Wait()
	close(answers)
	got := 0
	for a := range answers {
		got++
		if a.status != http.StatusOK || a.label == "" || strings.ContainsAny(a.label, "{}\n") {
			t.Errorf("%s: status %d body %q, want 200 and a bare label", a.file, a.status, a.label)
		}
	}
	if got != 100 {
		t.Fatalf("%d answers, want 100", got)
	}
	// Every image has its input object and a result object naming it.
	inputs, _ := filepath.Glob(filepath.Join(sys.data, "input", "images", "*"))
	results, _ := filepath.Glob(filepath.Join(sys.data, "output", "results", "*.json"))
	if len(inputs) != 100 || len(results) != 100 {
		t.Fatalf("data dir holds %d inputs and %d results, want 100 each", len(inputs), len(results))
	}
	names := map[string]bool{}
	for _, r := range results {
		res, err := nimbus.DecodeResult([]byte(readFile(t, r)))
		if err != nil || res.Status != nimbus.StatusDone || res.Label == "" {
			t.Fatalf("%s: %+v, %v", r, res, err)
		}
		if _, err := os.Stat(filepath.Join(sys.data, "input", "images", string(res.ID))); err != nil {
			t.Errorf("result %s has no input object: %v", res.ID, err)
		}
		names[res.Name] = true
	}
	if len(names) != 100 {
		t.Fatalf("results name %d distinct files, want 100", len(names))
	}
}

func pngHeader(t testing.TB, w, h int) string {
	t.Helper()
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	b := buf.Bytes()
	// Rewrite IHDR's size; the decoder checks the header CRC, so fix it too.
	ihdr := b[8:]
	put := func(off, v int) {
		ihdr[off], ihdr[off+1], ihdr[off+2], ihdr[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	put(8, w)
	put(12, h)
	crc := crc32.ChecksumIEEE(ihdr[4:21])
	put(21, int(crc))
	return string(b)
}

func TestBadInputsGetClearErrors(t *testing.T) {
	c := classifytest.MustOpen(t, 1)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	sys := mustStart(t, c, data, fastPolicy())
	parrot := readFile(t, filepath.Join(classifytest.PhotosDir(t), "coral_parrot.jpg"))
	tests := []struct {
		name   string
		body   func() (io.Reader, string)
		status int
		accept bool // a job id comes back: accepted, then failed
		inMsg  string
	}{
		{"empty file", func() (io.Reader, string) { return form(t, [3]string{"myfile", "empty.jpg", ""}) }, 400, false, "empty"},
		{"missing field", func() (io.Reader, string) { return form(t, [3]string{"photo", "p.jpg", parrot}) }, 400, false, "myfile"},
		{"not multipart", func() (io.Reader, string) { return strings.NewReader(parrot), "image/jpeg" }, 400, false, "multipart"},
		{"text renamed .jpg", func() (io.Reader, string) {
			return form(t, [3]string{"myfile", "cat.jpg", "I am a text file, honest.\n"})
		}, 415, false, "unsupported"},
		{"truncated jpeg", func() (io.Reader, string) { return form(t, [3]string{"myfile", "half.jpg", parrot[:len(parrot)/2]}) }, 422, true, "decod"},
		{"png claiming 20000x20000", func() (io.Reader, string) {
			return form(t, [3]string{"myfile", "bomb.png", pngHeader(t, 20000, 20000)})
		}, 413, false, "20000x20000"},
		{"50 MiB body", func() (io.Reader, string) {
			return form(t, [3]string{"myfile", "huge.jpg", parrot + strings.Repeat("x", 50<<20)})
		}, 413, false, "larger than"},
		{"path traversal name", func() (io.Reader, string) { return form(t, [3]string{"myfile", "../../etc/passwd", parrot}) }, 200, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := tc.body()
			status, raw := post(t, sys.url+"/classify", body, ct)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, raw)
			}
			var e struct {
				Error string
				ID    nimbus.JobID
				File  string
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("body %q is not JSON: %v", raw, err)
			}
			if tc.status != 200 && !strings.Contains(strings.ToLower(e.Error), tc.inMsg) {
				t.Errorf("error %q does not mention %q", e.Error, tc.inMsg)
			}
			if tc.accept != (e.ID != "") {
				t.Errorf("job id %q; want one only for accepted uploads", e.ID)
			}
			if tc.status == 200 && e.File != "passwd" {
				t.Errorf("file name %q, want the base name only", e.File)
			}
		})
	}
	// Nothing escaped the data dir, and only job-id keys exist inside it.
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if !d.IsDir() && !strings.HasPrefix(path, data) {
			t.Errorf("file %s written outside the data dir", path)
		}
		if strings.Contains(d.Name(), "passwd") || strings.Contains(d.Name(), "..") {
			t.Errorf("a client's file name became a path: %s", path)
		}
		return nil
	})
	// And the server still serves.
	body, ct := form(t, [3]string{"myfile", "parrot.jpg", parrot})
	if status, raw := post(t, sys.url+"/classify", body, ct); status != 200 || !strings.Contains(string(raw), "macaw") {
		t.Fatalf("after bad inputs: status %d %s", status, raw)
	}
}

func getJob(t testing.TB, url string, id nimbus.JobID) (int, nimbus.Result) {
	t.Helper()
	resp, err := http.Get(url + "/v1/jobs/" + string(id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res nimbus.Result
	json.NewDecoder(resp.Body).Decode(&res)
	return resp.StatusCode, res
}

func TestAsyncJobsSurviveARestart(t *testing.T) {
	c := classifytest.MustOpen(t, 0)
	data := t.TempDir()
	photos := classifytest.PhotosDir(t)
	var ids []nimbus.JobID
	t.Run("submit and finish", func(t *testing.T) {
		sys := mustStart(t, c, data, fastPolicy())
		body, ct := form(t,
			[3]string{"myfile", "parrot.jpg", readFile(t, filepath.Join(photos, "coral_parrot.jpg"))},
			[3]string{"myfile", "hotdog.jpg", readFile(t, filepath.Join(photos, "coral_hot_dog.jpg"))},
			[3]string{"files", "bird.bmp", readFile(t, filepath.Join(photos, "coral_bird.bmp"))})
		status, raw := post(t, sys.url+"/v1/jobs", body, ct)
		if status != http.StatusAccepted {
			t.Fatalf("status %d: %s", status, raw)
		}
		var resp struct{ Jobs []struct{ ID nimbus.JobID } }
		json.Unmarshal(raw, &resp)
		if len(resp.Jobs) != 3 {
			t.Fatalf("accepted %s, want 3 jobs", raw)
		}
		for _, j := range resp.Jobs {
			ids = append(ids, j.ID)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				status, res := getJob(t, sys.url, j.ID)
				if status != 200 {
					t.Fatalf("GET job: status %d", status)
				}
				if res.Status == nimbus.StatusDone {
					break
				}
				if res.Status == nimbus.StatusFailed || time.Now().After(deadline) {
					t.Fatalf("job %s: %+v", j.ID, res)
				}
			}
		}
	})
	t.Run("read after restart", func(t *testing.T) {
		sys := mustStart(t, c, data, fastPolicy())
		want := []string{"macaw", "hot dog", "chickadee"}
		for i, id := range ids {
			if status, res := getJob(t, sys.url, id); status != 200 || res.Label != want[i] {
				t.Errorf("job %s: status %d %+v, want %s", id, status, res, want[i])
			}
		}
		unknown := nimbus.NewJobID(time.Now())
		if status, _ := getJob(t, sys.url, unknown); status != http.StatusNotFound {
			t.Errorf("unknown job: status %d, want 404", status)
		}
		if status, _ := getJob(t, sys.url, "..%2F..%2Fetc"); status != http.StatusBadRequest {
			t.Errorf("malformed id: status %d, want 400", status)
		}
	})
}

func TestScalerFollowsTheBurst(t *testing.T) {
	c := classifytest.MustOpen(t, 0)
	sys := mustStart(t, c, t.TempDir(), fastPolicy())
	desired := func() int {
		resp, err := http.Get(sys.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, `nimbus_workers{state="desired"} `); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		return 0
	}
	dir := classifytest.ImageNet100Dir(t)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			body, ct := form(t, [3]string{"myfile", "x.jpg", readFile(t, filepath.Join(dir, fmt.Sprintf("test_%d.JPEG", i)))})
			if status, raw := post(t, sys.url+"/classify", body, ct); status != 200 {
				t.Errorf("status %d: %s", status, raw)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	peak := 0
	for watching := true; watching; {
		select {
		case <-done:
			watching = false
		case <-time.After(50 * time.Millisecond):
			peak = max(peak, desired())
		}
	}
	// The window holds the fleet for 2s after the burst, so a fast burst is
	// still seen here.
	peak = max(peak, desired())
	if peak < 2 {
		t.Fatalf("desired workers peaked at %d during a burst of 40 jobs, want at least 2", peak)
	}
	for deadline := time.Now().Add(15 * time.Second); desired() != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("desired workers still %d 15s after the burst, want 0", desired())
		}
	}
}
