package classify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nimbus-ml/nimbus/runtime/classify"
	"github.com/nimbus-ml/nimbus/runtime/classify/classifytest"
	"github.com/nimbus-ml/nimbus/runtime/imaging"
)

func loadPhotos(b *testing.B) [][]byte {
	b.Helper()
	dir := classifytest.PhotosDir(b)
	var out [][]byte
	for _, p := range classifytest.Expected() {
		data, err := os.ReadFile(filepath.Join(dir, p.File))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// BenchmarkClassify measures decode + preprocess + inference per image with
// 1 and 2 sessions, b.RunParallel keeping every session busy.
func BenchmarkClassify(b *testing.B) {
	photos := loadPhotos(b)
	for _, sessions := range []int{1, 2} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			c := classifytest.MustOpen(b, sessions)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := c.Classify(context.Background(), photos[i%len(photos)]); err != nil {
						b.Error(err)
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkInference measures the forward pass alone on prepared tensors,
// with 1 and 2 sessions kept busy by b.RunParallel.
func BenchmarkInference(b *testing.B) {
	photos := loadPhotos(b)
	for _, sessions := range []int{1, 2} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			c := classifytest.MustOpen(b, sessions)
			tensors := make([][]float32, len(photos))
			for i, p := range photos {
				t, err := c.Prepare(p)
				if err != nil {
					b.Fatal(err)
				}
				tensors[i] = t
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if _, _, err := c.Infer(context.Background(), tensors[i%len(tensors)]); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/image")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkPreprocess measures decoding and preprocessing alone.
func BenchmarkPreprocess(b *testing.B) {
	photos := loadPhotos(b)
	p := classify.ImageNetPreprocess()
	dst := make([]float32, p.TensorLen())
	b.ResetTimer()
	for i := range b.N {
		img, err := imaging.Decode(photos[i%len(photos)], 40_000_000)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Into(img, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
