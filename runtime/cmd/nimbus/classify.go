package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/nimbus-ml/nimbus/runtime/client"
)

func runClassify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	var (
		endpoint    string
		concurrency int
		timeout     time.Duration
	)
	fs.StringVar(&endpoint, "endpoint", "http://127.0.0.1:8080", "Nimbus web tier URL")
	fs.IntVar(&concurrency, "concurrency", 8, "uploads in flight at once")
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "per-upload timeout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name files or directories to classify: nimbus classify photo.jpg photos/")
	}
	files, err := client.Files(fs.Args())
	if err != nil {
		return err
	}
	c := &client.Client{Endpoint: endpoint, HTTP: &http.Client{Timeout: timeout}}
	bar := term.IsTerminal(int(os.Stderr.Fd()))
	n := 0
	start := time.Now()
	outcomes := c.Run(ctx, files, concurrency, func(o client.Outcome) {
		n++
		if bar {
			fmt.Fprint(os.Stderr, "\r\033[K") // clear the bar before printing the line
		}
		if o.OK() {
			fmt.Printf("%s: %s\n", filepath.Base(o.File), o.Result.Label)
		} else {
			fmt.Printf("%s: error: %s\n", filepath.Base(o.File), o.Err)
		}
		if bar {
			done := 30 * n / len(files)
			fmt.Fprintf(os.Stderr, "[%s%s] %d/%d", strings.Repeat("#", done), strings.Repeat(".", 30-done), n, len(files))
		}
	})
	if bar {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	summary := client.Summarise(outcomes, time.Since(start))
	fmt.Fprintln(os.Stderr, summary)
	if summary.Failed > 0 {
		return fmt.Errorf("%d of %d files failed", summary.Failed, len(files))
	}
	return nil
}
