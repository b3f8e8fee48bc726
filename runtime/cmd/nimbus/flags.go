package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/nimbus-ml/nimbus/runtime/classify"
)

// parse parses args, then fills every flag not given on the command line
// from NIMBUS_<FLAG>, and reports all problems at once.
func parse(fs *flag.FlagSet, args []string) error {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nimbus %s [flags]\n\nflags (each also NIMBUS_<FLAG>):\n", fs.Name())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "NIMBUS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// logFlags configure structured logging.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

// modelFlags select the classifier's assets.
type modelFlags struct {
	assets       string
	cache        string
	model        string
	modelSHA256  string
	labels       string
	labelsSHA256 string
	onnxruntime  string
	sessions     int
	maxPixels    int
	preprocess   classify.Preprocess
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.assets, "assets", "", "offline mirror directories holding the assets, separated by '"+string(filepath.ListSeparator)+"' (for air-gapped machines)")
	fs.StringVar(&m.cache, "cache", classify.DefaultCacheDir(), "where fetched assets are kept")
	fs.StringVar(&m.model, "model", "", "ONNX ImageNet classifier: a URL or a path (default MobileNetV2 int8); needs --model-sha256")
	fs.StringVar(&m.modelSHA256, "model-sha256", "", "sha256 of --model")
	fs.StringVar(&m.labels, "labels", "", "JSON array of class names: a URL or a path (default ImageNet simple labels); needs --labels-sha256")
	fs.StringVar(&m.labelsSHA256, "labels-sha256", "", "sha256 of --labels")
	fs.StringVar(&m.onnxruntime, "onnxruntime", "", "path of an ONNX Runtime (1.24 or newer) shared library to use instead of the pinned one")
	fs.IntVar(&m.sessions, "sessions", runtime.NumCPU(), "parallel single-threaded inference sessions")
	fs.IntVar(&m.maxPixels, "max-pixels", 40_000_000, "largest image, in pixels, a worker decodes")
	// The model's preprocessing is configuration too, for models trained with
	// other sizes or statistics.
	m.preprocess = classify.ImageNetPreprocess()
	fs.IntVar(&m.preprocess.ResizeShorter, "resize", m.preprocess.ResizeShorter, "preprocessing: resize the shorter side to this many pixels")
	fs.IntVar(&m.preprocess.Crop, "crop", m.preprocess.Crop, "preprocessing: centre crop to this square, the model's input size")
	fs.Var(triple{&m.preprocess.Mean}, "mean", "preprocessing: per-channel RGB mean of [0,1] pixels, as r,g,b")
	fs.Var(triple{&m.preprocess.Std}, "std", "preprocessing: per-channel RGB standard deviation, as r,g,b")
}

// assetFrom turns a URL-or-path plus sha256 into an Asset and the mirror
// directory it implies.
func assetFrom(what, location, sum string) (classify.Asset, string, error) {
	if len(sum) != 64 {
		return classify.Asset{}, "", fmt.Errorf("--%s needs --%s-sha256 (64 hex digits) so the file can be verified", what, what)
	}
	a := classify.Asset{Name: filepath.Base(location), SHA256: strings.ToLower(sum)}
	if strings.HasPrefix(location, "https://") || strings.HasPrefix(location, "http://") {
		a.URL = location
		a.Name = filepath.Base(strings.SplitN(location, "?", 2)[0])
		return a, "", nil
	}
	return a, filepath.Dir(location), nil
}

func (m *modelFlags) resolve() (classify.Assets, *classify.Fetcher, error) {
	assets := classify.Assets{Model: classify.MobileNetV2Int8(), Labels: classify.ImageNetLabels()}
	if m.onnxruntime == "" {
		lib, err := classify.OnnxRuntimeLibrary()
		if err != nil {
			return classify.Assets{}, nil, err
		}
		assets.Library = lib
	}
	f := &classify.Fetcher{CacheDir: m.cache, Mirrors: filepath.SplitList(m.assets)}
	var errs []error
	if m.model != "" {
		a, dir, err := assetFrom("model", m.model, m.modelSHA256)
		errs = append(errs, err)
		assets.Model = a
		if dir != "" {
			f.Mirrors = append([]string{dir}, f.Mirrors...)
		}
	}
	if m.labels != "" {
		a, dir, err := assetFrom("labels", m.labels, m.labelsSHA256)
		errs = append(errs, err)
		assets.Labels = a
		if dir != "" {
			f.Mirrors = append([]string{dir}, f.Mirrors...)
		}
	}
	if m.sessions < 1 {
		errs = append(errs, fmt.Errorf("--sessions %d must be at least 1", m.sessions))
	}
	if err := m.preprocess.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--resize, --crop, --std: %w", err))
	}
	return assets, f, errors.Join(errs...)
}

// open fetches what is missing and loads the classifier.
func (m *modelFlags) open(ctx context.Context, logger *slog.Logger) (*classify.Classifier, error) {
	assets, f, err := m.resolve()
	if err != nil {
		return nil, err
	}
	f.Logger = logger
	var cfg classify.Config
	if m.onnxruntime != "" {
		// A library the operator chose is trusted as given.
		model, err := f.Fetch(ctx, assets.Model)
		if err != nil {
			return nil, err
		}
		labels, err := f.Fetch(ctx, assets.Labels)
		if err != nil {
			return nil, err
		}
		cfg = classify.Config{Library: m.onnxruntime, Model: model, Labels: labels}
	} else if cfg, err = f.FetchAll(ctx, assets); err != nil {
		return nil, err
	}
	cfg.Preprocess = m.preprocess
	cfg.Sessions = m.sessions
	cfg.MaxPixels = m.maxPixels
	c, err := classify.Open(cfg)
	if err != nil {
		return nil, err
	}
	logger.Info("classifier ready", "model", cfg.Model, "sessions", cfg.Sessions)
	return c, nil
}

// triple is a flag holding three comma-separated numbers.
type triple struct{ v *[3]float32 }

func (t triple) String() string {
	if t.v == nil {
		return ""
	}
	return fmt.Sprintf("%g,%g,%g", t.v[0], t.v[1], t.v[2])
}

func (t triple) Set(s string) error {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return fmt.Errorf("want three comma-separated numbers, r,g,b")
	}
	var out [3]float32
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return fmt.Errorf("%q is not a number", p)
		}
		out[i] = float32(f)
	}
	*t.v = out
	return nil
}
