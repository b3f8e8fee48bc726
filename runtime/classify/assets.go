package classify

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Asset is a file Nimbus needs at run time, pinned by its sha256. It comes
// from the first place that has it: the cache, an offline mirror directory,
// its URL, or an npm package (ONNX Runtime ships its shared library that way).
type Asset struct {
	// Name is the file name in the cache and in mirror directories.
	Name   string
	SHA256 string
	// URL is the official download address, if any.
	URL string
	// NPM names a package file, fetched with the npm client, when set.
	NPM *NPMFile
}

// NPMFile is one file inside an npm package tarball.
type NPMFile struct {
	Package string // name@version
	Path    string // path inside the package, e.g. bin/.../libonnxruntime.so.1
}

// MobileNetV2Int8 is the default model: ONNX Model Zoo MobileNetV2 int8.
func MobileNetV2Int8() Asset {
	return Asset{
		Name:   "mobilenetv2-12-int8.onnx",
		SHA256: "cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f",
		URL:    "https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-12-int8.onnx",
	}
}

// ImageNetLabels are the 1000 ImageNet-1k class names in index order.
func ImageNetLabels() Asset {
	return Asset{
		Name:   "imagenet-simple-labels.json",
		SHA256: "987705581d9446328498f950454a1cc7d8dfc578a8243d8bfdcd2588a6905aae",
		URL:    "https://raw.githubusercontent.com/anishathalye/imagenet-simple-labels/master/imagenet-simple-labels.json",
	}
}

// onnxRuntimePackage carries ONNX Runtime 1.30.0 builds that
// github.com/yalue/onnxruntime_go v1.27.0 loads.
const onnxRuntimePackage = "onnxruntime-node@1.30.0"

// OnnxRuntimeLibrary returns the ONNX Runtime shared library for this
// platform.
func OnnxRuntimeLibrary() (Asset, error) {
	type lib struct{ path, name, sha string }
	libs := map[string]lib{
		"linux/amd64":  {"bin/napi-v6/linux/x64/libonnxruntime.so.1", "libonnxruntime.so.1", "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"},
		"linux/arm64":  {"bin/napi-v6/linux/arm64/libonnxruntime.so.1", "libonnxruntime.so.1", "1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76"},
		"darwin/arm64": {"bin/napi-v6/darwin/arm64/libonnxruntime.1.dylib", "libonnxruntime.1.dylib", "685d2be5dba1309c89d3a5324b7fd06a5c42f1a61bfea32d14c4cc28d072121d"},
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	l, ok := libs[platform]
	if !ok {
		return Asset{}, fmt.Errorf("no pinned ONNX Runtime build for %s: install ONNX Runtime 1.24 or newer and pass its library with --onnxruntime", platform)
	}
	return Asset{Name: l.name, SHA256: l.sha, NPM: &NPMFile{Package: onnxRuntimePackage, Path: l.path}}, nil
}

// Fetcher resolves assets to verified local files.
type Fetcher struct {
	// CacheDir keeps downloaded assets between runs.
	CacheDir string
	// Mirrors are offline directories searched before any download, for
	// air-gapped machines.
	Mirrors []string
	// Client downloads URLs (default http.DefaultClient).
	Client *http.Client
	Logger *slog.Logger
}

// DefaultCacheDir is $NIMBUS_CACHE's usual fallback: the user's cache
// directory, or a temporary one when there is none.
func DefaultCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "nimbus")
	}
	return filepath.Join(os.TempDir(), "nimbus-cache")
}

// Fetch returns the path of a verified copy of a.
func (f *Fetcher) Fetch(ctx context.Context, a Asset) (string, error) {
	if a.Name == "" || a.Name != filepath.Base(a.Name) || len(a.SHA256) != 64 {
		return "", fmt.Errorf("asset %q needs a plain file name and a 64-digit sha256", a.Name)
	}
	logger := f.logger()
	for _, dir := range f.Mirrors {
		path := filepath.Join(dir, a.Name)
		err := verify(path, a.SHA256)
		if err == nil {
			logger.Debug("asset from mirror", "asset", a.Name, "path", path)
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("mirror copy of %s: %w", a.Name, err)
		}
	}
	cached := filepath.Join(f.CacheDir, a.SHA256[:12], a.Name)
	if err := verify(cached, a.SHA256); err == nil {
		return cached, nil
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return "", fmt.Errorf("creating asset cache: %w", err)
	}
	var err error
	switch {
	case a.URL != "":
		logger.Info("downloading asset", "asset", a.Name, "url", a.URL)
		err = f.download(ctx, a, cached)
	case a.NPM != nil:
		logger.Info("fetching asset from npm package", "asset", a.Name, "package", a.NPM.Package)
		err = f.fromNPM(ctx, a, cached)
	default:
		err = errors.New("it has no URL and is in no mirror")
	}
	if err != nil {
		hint := ""
		if len(f.Mirrors) == 0 {
			hint = " (offline? put the file in a directory and set NIMBUS_ASSETS to it)"
		}
		return "", fmt.Errorf("fetching %s: %w%s", a.Name, err, hint)
	}
	return cached, nil
}

func (f *Fetcher) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// verify checks path's sha256; a missing file gives fs.ErrNotExist.
func verify(path, want string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return fmt.Errorf("hashing %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s has sha256 %s, want %s", path, got, want)
	}
	return nil
}

// install verifies r's content against a.SHA256 and moves it into dest
// atomically, so an interrupted fetch never leaves a bad cache entry.
func install(r io.Reader, a Asset, dest string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("downloaded content has sha256 %s, want %s", got, a.SHA256)
	}
	return os.Rename(tmp.Name(), dest)
}

func (f *Fetcher) download(ctx context.Context, a Asset, dest string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return err
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", a.URL, resp.Status)
	}
	return install(resp.Body, a, dest)
}

// fromNPM packs the package with the npm client (no install scripts run) and
// extracts the one file.
func (f *Fetcher) fromNPM(ctx context.Context, a Asset, dest string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".npm-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "npm", "pack", a.NPM.Package, "--pack-destination", tmp, "--silent")
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm pack %s: %w: %s", a.NPM.Package, err, strings.TrimSpace(string(out)))
	}
	tarballs, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tarballs) != 1 {
		return fmt.Errorf("npm pack %s left %d tarballs, want 1", a.NPM.Package, len(tarballs))
	}
	return extractFromTarball(tarballs[0], "package/"+a.NPM.Path, a, dest)
}

func extractFromTarball(tarball, member string, a Asset, dest string) error {
	file, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer file.Close()
	gz, err := gzip.NewReader(file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", tarball, err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s has no %s", filepath.Base(tarball), member)
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", tarball, err)
		}
		if hdr.Name == member {
			return install(tr, a, dest)
		}
	}
}

// Assets are the three files a Classifier loads.
type Assets struct {
	Library, Model, Labels Asset
}

// DefaultAssets are ONNX Runtime for this platform, MobileNetV2 int8 and the
// ImageNet labels.
func DefaultAssets() (Assets, error) {
	lib, err := OnnxRuntimeLibrary()
	if err != nil {
		return Assets{}, err
	}
	return Assets{Library: lib, Model: MobileNetV2Int8(), Labels: ImageNetLabels()}, nil
}

// FetchAll resolves every asset, returning a Config with their paths.
func (f *Fetcher) FetchAll(ctx context.Context, a Assets) (Config, error) {
	var cfg Config
	for _, x := range []struct {
		asset Asset
		dst   *string
	}{{a.Library, &cfg.Library}, {a.Model, &cfg.Model}, {a.Labels, &cfg.Labels}} {
		path, err := f.Fetch(ctx, x.asset)
		if err != nil {
			return Config{}, err
		}
		*x.dst = path
	}
	return cfg, nil
}
