package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nimbus-ml/nimbus/runtime/classify"
)

// runAssets copies verified assets into a directory: an offline mirror for
// air-gapped machines, and what the AMI bake uploads.
func runAssets(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("assets", flag.ContinueOnError)
	var (
		logs  logFlags
		model modelFlags
		out   string
	)
	logs.register(fs)
	model.register(fs)
	fs.StringVar(&out, "out", "", "directory to write the assets to (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if out == "" {
		return errors.New("--out is required: the directory to write the assets to")
	}
	logger, err := logs.logger()
	if err != nil {
		return err
	}
	assets, f, err := model.resolve()
	if err != nil {
		return err
	}
	f.Logger = logger
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	for _, a := range []classify.Asset{assets.Library, assets.Model, assets.Labels} {
		if a.Name == "" {
			continue // --onnxruntime names a library the operator provides
		}
		path, err := f.Fetch(ctx, a)
		if err != nil {
			return err
		}
		dest := filepath.Join(out, a.Name)
		if err := copyFile(path, dest); err != nil {
			return fmt.Errorf("copying %s: %w", a.Name, err)
		}
		fmt.Println(dest)
	}
	return nil
}

func copyFile(src, dst string) error {
	if same, _ := sameFile(src, dst); same {
		return nil // the mirror is the output directory
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sameFile(a, b string) (bool, error) {
	ia, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(ia, ib), nil
}
