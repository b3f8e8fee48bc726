// Package classifytest gives tests a real classifier and the shared photos.
package classifytest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/classify"
)

// Fetcher resolves assets the way the nimbus binary does: NIMBUS_ASSETS lists
// offline mirror directories, NIMBUS_CACHE overrides the cache.
func Fetcher() *classify.Fetcher {
	cache := os.Getenv("NIMBUS_CACHE")
	if cache == "" {
		cache = classify.DefaultCacheDir()
	}
	return &classify.Fetcher{CacheDir: cache, Mirrors: filepath.SplitList(os.Getenv("NIMBUS_ASSETS"))}
}

// Config fetches (or finds) the default assets.
func Config(tb testing.TB) classify.Config {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	assets, err := classify.DefaultAssets()
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := Fetcher().FetchAll(ctx, assets)
	if err != nil {
		tb.Fatalf("fetching classifier assets: %v", err)
	}
	cfg.Preprocess = classify.ImageNetPreprocess()
	return cfg
}

// MustOpen opens the default classifier with the given number of sessions
// (0: one per CPU) and closes it when the test ends.
func MustOpen(tb testing.TB, sessions int) *classify.Classifier {
	tb.Helper()
	cfg := Config(tb)
	cfg.Sessions = sessions
	c, err := classify.Open(cfg)
	if err != nil {
		tb.Fatalf("opening classifier: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// sharedDir finds ../shared/<name> from the module root, or NIMBUS_<NAME>.
func sharedDir(tb testing.TB, name, env string) string {
	tb.Helper()
	if dir := os.Getenv(env); dir != "" {
		return dir
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	dir := filepath.Join(root, "..", "shared", name)
	if _, err := os.Stat(dir); err != nil {
		tb.Skipf("no %s: set %s to a directory of them (%v)", name, env, err)
	}
	return dir
}

// PhotosDir holds real photos with known classes.
func PhotosDir(tb testing.TB) string { return sharedDir(tb, "photos", "NIMBUS_PHOTOS") }

// ImageNet100Dir holds the original workload's 100 small images.
func ImageNet100Dir(tb testing.TB) string { return sharedDir(tb, "imagenet-100", "NIMBUS_IMAGENET100") }

// ExpectedPhoto is a photo with an asserted class: one of Labels must be
// within the first Within predictions.
type ExpectedPhoto struct {
	File   string
	Labels []string
	Within int
}

// Expected lists the photos of ../shared/photos whose class is known.
func Expected() []ExpectedPhoto {
	return []ExpectedPhoto{
		{"coral_bird.bmp", []string{"chickadee"}, 1},
		{"coral_parrot.jpg", []string{"macaw"}, 1},
		{"coral_hot_dog.jpg", []string{"hot dog"}, 1},
		{"coral_dragonfly.bmp", []string{"dragonfly"}, 1},
		{"coral_cat.bmp", []string{"Egyptian Mau", "tabby cat", "tiger cat"}, 1},
		{"coral_grace_hopper.bmp", []string{"military uniform"}, 2},
	}
}

// Matches reports whether one of want is within the first n labels.
func Matches(got []string, want []string, n int) bool {
	for _, g := range got[:min(n, len(got))] {
		for _, w := range want {
			if strings.EqualFold(g, w) {
				return true
			}
		}
	}
	return false
}
