// Package classify turns image bytes into ImageNet labels with ONNX Runtime:
// decoding, torchvision-style preprocessing, a pool of inference sessions,
// softmax and top-5. It also fetches and verifies the assets it needs
// (the ONNX Runtime library, the model, the labels).
package classify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/imaging"
)

// Config names what a Classifier loads. Paths are local files; see Fetcher
// for getting them.
type Config struct {
	// Library is the ONNX Runtime shared library.
	Library string
	// Model is an ONNX image classifier: one float32 input [N,3,H,W], one
	// float32 output [N,classes] of logits.
	Model string
	// Labels is a JSON array of class names in output index order.
	Labels     string
	Preprocess Preprocess
	// Sessions run inference in parallel, each single-threaded; measured here,
	// one single-threaded session per core beats one multi-threaded session.
	// Default: the number of CPUs.
	Sessions int
	// MaxPixels refuses larger images before decoding (default 40 million).
	MaxPixels int
}

// Classification is one image's outcome.
type Classification struct {
	Top5       []nimbus.Prediction
	Preprocess time.Duration // decode + resize + normalise
	Inference  time.Duration
}

// Classifier classifies images. It is safe for concurrent use; calls beyond
// the number of sessions wait for one.
type Classifier struct {
	labels   []string
	pre      Preprocess
	maxPix   int
	sessions chan *session
	all      []*session
	closed   sync.Once
}

type session struct {
	s   *ort.AdvancedSession
	in  *ort.Tensor[float32]
	out *ort.Tensor[float32]
}

// environmentMu serialises initialisation of ONNX Runtime's environment, which
// the binding keeps process-wide; once made it lives until the process exits.
var environmentMu sync.Mutex

func initEnvironment(library string) error {
	environmentMu.Lock()
	defer environmentMu.Unlock()
	if ort.IsInitialized() {
		return nil
	}
	if _, err := os.Stat(library); err != nil {
		return fmt.Errorf("ONNX Runtime library: %w", err)
	}
	ort.SetSharedLibraryPath(library)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", library, err)
	}
	return nil
}

// Open loads the model into cfg.Sessions sessions.
func Open(cfg Config) (*Classifier, error) {
	if cfg.Sessions <= 0 {
		cfg.Sessions = runtime.NumCPU()
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = 40_000_000
	}
	if err := cfg.Preprocess.Validate(); err != nil {
		return nil, err
	}
	labels, err := readLabels(cfg.Labels)
	if err != nil {
		return nil, err
	}
	if err := initEnvironment(cfg.Library); err != nil {
		return nil, err
	}
	inputs, outputs, err := ort.GetInputOutputInfo(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", cfg.Model, err)
	}
	if len(inputs) != 1 || len(outputs) != 1 {
		return nil, fmt.Errorf("model %s has %d inputs and %d outputs, want 1 and 1", cfg.Model, len(inputs), len(outputs))
	}
	if dims := inputs[0].Dimensions; len(dims) != 4 || dims[1] != 3 ||
		dims[2] > 0 && dims[2] != int64(cfg.Preprocess.Crop) || dims[3] > 0 && dims[3] != int64(cfg.Preprocess.Crop) {
		return nil, fmt.Errorf("model %s takes input %v, want [N,3,%d,%d] (set the crop to the model's input size)",
			cfg.Model, dims, cfg.Preprocess.Crop, cfg.Preprocess.Crop)
	}
	if dims := outputs[0].Dimensions; len(dims) != 2 || dims[1] != int64(len(labels)) {
		return nil, fmt.Errorf("model %s outputs %v, want [N,%d] to match the labels", cfg.Model, dims, len(labels))
	}
	c := &Classifier{labels: labels, pre: cfg.Preprocess, maxPix: cfg.MaxPixels, sessions: make(chan *session, cfg.Sessions)}
	for range cfg.Sessions {
		s, err := newSession(cfg.Model, inputs[0].Name, outputs[0].Name, cfg.Preprocess.Crop, len(labels))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.all = append(c.all, s)
		c.sessions <- s
	}
	return c, nil
}

func newSession(model, input, output string, crop, classes int) (*session, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating session options: %w", err)
	}
	defer opts.Destroy()
	if err := errors.Join(opts.SetIntraOpNumThreads(1), opts.SetInterOpNumThreads(1)); err != nil {
		return nil, fmt.Errorf("setting session threads: %w", err)
	}
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(crop), int64(crop)))
	if err != nil {
		return nil, fmt.Errorf("allocating input tensor: %w", err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, int64(classes)))
	if err != nil {
		in.Destroy()
		return nil, fmt.Errorf("allocating output tensor: %w", err)
	}
	s, err := ort.NewAdvancedSession(model, []string{input}, []string{output}, []ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, fmt.Errorf("creating inference session for %s: %w", model, err)
	}
	return &session{s: s, in: in, out: out}, nil
}

func readLabels(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading labels: %w", err)
	}
	var labels []string
	if err := json.Unmarshal(raw, &labels); err != nil {
		return nil, fmt.Errorf("labels %s must be a JSON array of strings: %w", path, err)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("labels %s is empty", path)
	}
	return labels, nil
}

// Close releases the sessions. The classifier must not be in use.
func (c *Classifier) Close() error {
	var errs []error
	c.closed.Do(func() {
		for _, s := range c.all {
			errs = append(errs, s.s.Destroy(), s.in.Destroy(), s.out.Destroy())
		}
	})
	return errors.Join(errs...)
}

// Labels returns the class names in index order.
func (c *Classifier) Labels() []string { return slices.Clone(c.labels) }

// Classify decodes data and returns its top-5 classes. Errors for bad images
// carry nimbus codes (EUNSUPPORTED, EUNDECODABLE, ETOOLARGE); retrying them is
// pointless.
func (c *Classifier) Classify(ctx context.Context, data []byte) (Classification, error) {
	start := time.Now()
	tensor, err := c.Prepare(data)
	if err != nil {
		return Classification{}, err
	}
	prepared := time.Since(start)
	top5, inference, err := c.Infer(ctx, tensor)
	if err != nil {
		return Classification{}, err
	}
	return Classification{Top5: top5, Preprocess: prepared, Inference: inference}, nil
}

// Prepare decodes and preprocesses an image into the model's input tensor.
// It needs no session, so callers may prepare while sessions are busy.
func (c *Classifier) Prepare(data []byte) ([]float32, error) {
	img, err := imaging.Decode(data, c.maxPix)
	if err != nil {
		return nil, err
	}
	tensor := make([]float32, c.pre.TensorLen())
	if err := c.pre.Into(img, tensor); err != nil {
		return nil, fmt.Errorf("preprocessing: %w", err)
	}
	return tensor, nil
}

// Infer runs a prepared tensor through a free session, waiting for one, and
// returns the top-5 classes and the time the forward pass took.
func (c *Classifier) Infer(ctx context.Context, tensor []float32) ([]nimbus.Prediction, time.Duration, error) {
	if len(tensor) != c.pre.TensorLen() {
		return nil, 0, fmt.Errorf("tensor holds %d floats, want %d", len(tensor), c.pre.TensorLen())
	}
	var s *session
	select {
	case s = <-c.sessions:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("waiting for an inference session: %w", ctx.Err())
	}
	defer func() { c.sessions <- s }()
	start := time.Now()
	copy(s.in.GetData(), tensor)
	if err := s.s.Run(); err != nil {
		return nil, 0, fmt.Errorf("running inference: %w", err)
	}
	elapsed := time.Since(start)
	return topK(s.out.GetData(), c.labels, 5), elapsed, nil
}

// topK returns the k most probable classes under softmax, by selection:
// k is tiny next to the number of classes.
func topK(logits []float32, labels []string, k int) []nimbus.Prediction {
	maxLogit := slices.Max(logits)
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - maxLogit))
	}
	k = min(k, len(logits))
	best := make([]int, 0, k) // indices, highest logit first
	for i, l := range logits {
		if len(best) == k && l <= logits[best[k-1]] {
			continue
		}
		at := len(best)
		for at > 0 && logits[best[at-1]] < l {
			at--
		}
		if len(best) < k {
			best = append(best, 0)
		}
		copy(best[at+1:], best[at:len(best)-1])
		best[at] = i
	}
	out := make([]nimbus.Prediction, len(best))
	for i, j := range best {
		out[i] = nimbus.Prediction{Label: labels[j], Score: float32(math.Exp(float64(logits[j]-maxLogit)) / sum)}
	}
	return out
}
