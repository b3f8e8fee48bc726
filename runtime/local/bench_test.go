package local_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/classify/classifytest"
	"github.com/nimbus-ml/nimbus/runtime/client"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
)

// BenchmarkPipeline posts an image set through the whole local system
// (HTTP, bucket, queue, worker, result routing) with 100 concurrent clients,
// and, in the same process, classifies the same images directly with the
// same classifier as the baseline. It reports both throughputs and their
// ratio; 1.0 would mean the pipeline costs nothing over raw inference.
func BenchmarkPipeline(b *testing.B) {
	sets := []struct {
		name string
		dir  func(testing.TB) string
	}{
		{"imagenet-100", classifytest.ImageNet100Dir},
		{"photos", classifytest.PhotosDir},
	}
	c := classifytest.MustOpen(b, 0)
	policy := scaler.DefaultPolicy()
	policy.Min = policy.Max // warm workers: measure steady state, not scale-out
	sys := mustStart(b, c, b.TempDir(), policy)
	cl := &client.Client{Endpoint: sys.url, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}}
	for _, set := range sets {
		b.Run(set.name, func(b *testing.B) {
			files, err := client.Files([]string{set.dir(b)})
			if err != nil {
				b.Fatal(err)
			}
			images := make([][]byte, len(files))
			for i, f := range files {
				if images[i], err = os.ReadFile(f); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			// One untimed pass warms connections, sessions and the heap.
			cl.Run(ctx, files, 100, nil)
			var pipeline, raw time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				for _, o := range cl.Run(ctx, files, 100, nil) {
					if !o.OK() {
						b.Fatalf("%s: %s", filepath.Base(o.File), o.Err)
					}
				}
				pipeline += time.Since(start)

				start = time.Now()
				var wg sync.WaitGroup
				work := make(chan []byte)
				for range 8 {
					wg.Go(func() {
						for img := range work {
							if _, err := c.Classify(ctx, img); err != nil {
								b.Error(err)
							}
						}
					})
				}
				for _, img := range images {
					work <- img
				}
				close(work)
				wg.Wait()
				raw += time.Since(start)
			}
			n := float64(b.N * len(files))
			b.ReportMetric(n/pipeline.Seconds(), "pipeline-images/s")
			b.ReportMetric(n/raw.Seconds(), "raw-images/s")
			b.ReportMetric(raw.Seconds()/pipeline.Seconds(), "ratio")
		})
	}
}
