package classify_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/classify"
	"github.com/nimbus-ml/nimbus/runtime/classify/classifytest"
)

func TestPhotosGetTheirKnownClass(t *testing.T) {
	c := classifytest.MustOpen(t, 2)
	dir := classifytest.PhotosDir(t)
	for _, p := range classifytest.Expected() {
		t.Run(p.File, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, p.File))
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Classify(context.Background(), data)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			var got []string
			for _, pr := range res.Top5 {
				got = append(got, pr.Label)
			}
			if !classifytest.Matches(got, p.Labels, p.Within) {
				t.Fatalf("top-5 %q, want one of %q within the first %d", got, p.Labels, p.Within)
			}
			var sum float32
			for i, pr := range res.Top5 {
				sum += pr.Score
				if i > 0 && pr.Score > res.Top5[i-1].Score {
					t.Errorf("top-5 not in descending score order: %+v", res.Top5)
				}
			}
			if sum <= 0 || sum > 1.0001 {
				t.Errorf("top-5 probabilities sum to %v, want (0,1]", sum)
			}
		})
	}
}

func TestClassifyRejectsBadImages(t *testing.T) {
	c := classifytest.MustOpen(t, 1)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 64)), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		code string
	}{
		{"text", []byte("plain text, not an image"), nimbus.EUNSUPPORTED},
		{"truncated jpeg", buf.Bytes()[:buf.Len()/2], nimbus.EUNDECODABLE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Classify(context.Background(), tc.data)
			if got := nimbus.ErrorCode(err); got != tc.code {
				t.Fatalf("error %v has code %q, want %q", err, got, tc.code)
			}
		})
	}
}

func TestPreprocessUniformImage(t *testing.T) {
	t.Parallel()
	p := classify.ImageNetPreprocess()
	tests := []struct {
		name string
		img  image.Image
	}{
		{"rgba landscape", fill(image.NewRGBA(image.Rect(0, 0, 640, 480)), color.RGBA{200, 100, 50, 255})},
		{"rgba portrait small", fill(image.NewRGBA(image.Rect(10, 20, 74, 120)), color.RGBA{200, 100, 50, 255})},
		{"nrgba square", fill(image.NewNRGBA(image.Rect(0, 0, 300, 300)), color.NRGBA{200, 100, 50, 255})},
		{"paletted", fill(image.NewPaletted(image.Rect(0, 0, 500, 260), color.Palette{color.RGBA{200, 100, 50, 255}}), color.RGBA{200, 100, 50, 255})},
	}
	want := [3]float32{}
	for ch, v := range []float32{200, 100, 50} {
		want[ch] = (v/255 - p.Mean[ch]) / p.Std[ch]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, p.TensorLen())
			if err := p.Into(tc.img, dst); err != nil {
				t.Fatal(err)
			}
			plane := p.Crop * p.Crop
			for i, v := range dst {
				if ch := i / plane; math.Abs(float64(v-want[ch])) > 1e-4 {
					t.Fatalf("value %d (channel %d) = %v, want %v: resampling weights must sum to 1", i, ch, v, want[ch])
				}
			}
		})
	}
}

// TestPreprocessCentreCrop checks geometry: a bright square in the centre of a
// dark image must land in the centre of the crop, and the crop's corners,
// cut from the image's long side, must stay dark.
func TestPreprocessCentreCrop(t *testing.T) {
	t.Parallel()
	p := classify.ImageNetPreprocess()
	img := image.NewGray(image.Rect(0, 0, 1000, 500))
	for y := 200; y < 300; y++ {
		for x := 450; x < 550; x++ {
			img.SetGray(x, y, color.Gray{255})
		}
	}
	dst := make([]float32, p.TensorLen())
	if err := p.Into(img, dst); err != nil {
		t.Fatal(err)
	}
	at := func(x, y int) float32 { return dst[y*p.Crop+x]*p.Std[0] + p.Mean[0] } // back to [0,1]
	if v := at(112, 112); v < 0.99 {
		t.Errorf("centre = %v, want bright", v)
	}
	for _, c := range [][2]int{{0, 0}, {223, 0}, {0, 223}, {223, 223}, {112, 60}} {
		if v := at(c[0], c[1]); v > 0.01 {
			t.Errorf("pixel %v = %v, want dark", c, v)
		}
	}
	// The square is 100/500*256 = 51.2 px wide after resizing.
	bright := 0
	for x := range p.Crop {
		if at(x, 112) > 0.5 {
			bright++
		}
	}
	if bright < 50 || bright > 53 {
		t.Errorf("bright run across the centre row = %d px, want about 51", bright)
	}
}

func fill[T interface {
	image.Image
	Set(x, y int, c color.Color)
}](img T, c color.Color) T {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

func TestOpenRejectsAMismatchedConfiguration(t *testing.T) {
	base := classifytest.Config(t)
	shortLabels := filepath.Join(t.TempDir(), "labels.json")
	os.WriteFile(shortLabels, []byte(`["cat","dog"]`), 0o644)
	tests := []struct {
		name   string
		change func(*classify.Config)
		want   string
	}{
		{"crop differs from the model's input", func(c *classify.Config) { c.Preprocess.Crop, c.Preprocess.ResizeShorter = 200, 230 }, "crop"},
		{"labels differ from the model's classes", func(c *classify.Config) { c.Labels = shortLabels }, "labels"},
		{"no such model", func(c *classify.Config) { c.Model = filepath.Join(t.TempDir(), "none.onnx") }, "none.onnx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			c, err := classify.Open(cfg)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
