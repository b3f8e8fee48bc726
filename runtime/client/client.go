// Package client uploads images to a Nimbus endpoint with bounded
// concurrency and summarises the latencies, as `nimbus classify` does.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
)

// Client talks to one endpoint.
type Client struct {
	// Endpoint is the web tier's base URL, e.g. http://127.0.0.1:8080.
	Endpoint string
	HTTP     *http.Client
}

// Outcome is one file's answer.
type Outcome struct {
	File    string
	Status  int
	Result  nimbus.Result
	Err     string
	Latency time.Duration
}

// OK reports whether the file got a label.
func (o Outcome) OK() bool { return o.Status == http.StatusOK && o.Err == "" }

// Classify uploads one file to POST /classify and waits for its label.
func (c *Client) Classify(ctx context.Context, path string) (out Outcome) {
	out.File = path
	start := time.Now()
	defer func() { out.Latency = time.Since(start) }()
	data, err := os.ReadFile(path)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("myfile", filepath.Base(path))
	if err == nil {
		_, err = part.Write(data)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		out.Err = err.Error()
		return out
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.Endpoint, "/")+"/classify", &body)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	defer resp.Body.Close()
	out.Status = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		out.Err = err.Error()
		return out
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		out.Err = fmt.Sprintf("%s: %s", resp.Status, e.Error)
		return out
	}
	if err := json.Unmarshal(raw, &out.Result); err != nil {
		out.Err = fmt.Sprintf("decoding response: %v", err)
	}
	return out
}

// Files expands paths: files as given, directories to the images within
// (recursively, skipping hidden entries), in name order.
func Files(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && path != p {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}

// Run classifies files with at most concurrency uploads in flight, calling
// done after each (from one goroutine at a time), and returns every outcome
// in completion order.
func (c *Client) Run(ctx context.Context, files []string, concurrency int, done func(Outcome)) []Outcome {
	concurrency = max(concurrency, 1)
	work := make(chan string)
	var (
		mu       sync.Mutex
		outcomes []Outcome
		wg       sync.WaitGroup
	)
	for range min(concurrency, len(files)) {
		wg.Go(func() {
			for f := range work {
				o := c.Classify(ctx, f)
				mu.Lock()
				outcomes = append(outcomes, o)
				if done != nil {
					done(o)
				}
				mu.Unlock()
			}
		})
	}
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return outcomes
}

// Summary describes a run's latencies.
type Summary struct {
	OK, Failed    int
	P50, P95, Max time.Duration
	Elapsed       time.Duration
}

// Summarise computes the latency percentiles of outcomes.
func Summarise(outcomes []Outcome, elapsed time.Duration) Summary {
	s := Summary{Elapsed: elapsed}
	lat := make([]time.Duration, 0, len(outcomes))
	for _, o := range outcomes {
		if o.OK() {
			s.OK++
		} else {
			s.Failed++
		}
		lat = append(lat, o.Latency)
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	s.P50, s.P95, s.Max = at(0.50), at(0.95), lat[len(lat)-1]
	return s
}

func (s Summary) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.OK+s.Failed) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("%d classified, %d failed in %v (%.1f images/s); latency p50 %v, p95 %v, max %v",
		s.OK, s.Failed, s.Elapsed.Round(time.Millisecond), rate,
		s.P50.Round(time.Millisecond), s.P95.Round(time.Millisecond), s.Max.Round(time.Millisecond))
}
