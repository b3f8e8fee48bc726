package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/local"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
	"github.com/nimbus-ml/nimbus/runtime/web"
)

func runLocal(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	var (
		logs          logFlags
		model         modelFlags
		policy        = scaler.DefaultPolicy()
		webCfg        web.Config
		addr, dataDir string
		interval      time.Duration
		maxUploadMiB  int
	)
	logs.register(fs)
	model.register(fs)
	fs.StringVar(&addr, "addr", "127.0.0.1:8080", "web tier listen address")
	fs.StringVar(&dataDir, "data", "nimbus-data", "directory for the input and output buckets")
	registerPolicy(fs, &policy)
	fs.DurationVar(&interval, "scale-interval", time.Second, "how often the scaler observes the queue")
	fs.IntVar(&maxUploadMiB, "max-upload-mib", 10, "largest accepted image, in MiB")
	fs.IntVar(&webCfg.MaxPixels, "max-upload-pixels", 40_000_000, "largest accepted image, in pixels (checked from the header)")
	fs.DurationVar(&webCfg.WaitTimeout, "wait-timeout", 60*time.Second, "how long POST /classify waits for its result")
	fs.IntVar(&webCfg.MaxPending, "max-pending", 1000, "jobs in progress beyond which uploads get 503")
	if err := parse(fs, args); err != nil {
		return err
	}
	webCfg.MaxUploadBytes = int64(maxUploadMiB) << 20
	logger, err := logs.logger()
	if err != nil {
		return err
	}
	var errs []error
	if err := policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if maxUploadMiB < 1 {
		errs = append(errs, fmt.Errorf("--max-upload-mib %d must be at least 1", maxUploadMiB))
	}
	if dataDir == "" {
		errs = append(errs, errors.New("--data must name a directory"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	classifier, err := model.open(ctx, logger)
	if err != nil {
		return err
	}
	defer classifier.Close()
	sys, err := local.Start(local.Config{
		Addr: addr, DataDir: dataDir, Classifier: classifier, Policy: policy, ScaleInterval: interval,
		Web: webCfg, Logger: logger,
	})
	if err != nil {
		return err
	}
	logger.Info("nimbus is up", "url", sys.URL, "data", dataDir,
		"try", fmt.Sprintf("curl -F myfile=@photo.jpg %s/classify", sys.URL))
	return sys.Run(ctx)
}

func registerPolicy(fs *flag.FlagSet, p *scaler.Policy) {
	fs.IntVar(&p.Min, "min-workers", p.Min, "fewest workers")
	fs.IntVar(&p.Max, "max-workers", p.Max, "most workers")
	fs.IntVar(&p.TargetPerWorker, "target-per-worker", p.TargetPerWorker, "jobs (waiting or in hand) per worker")
	fs.DurationVar(&p.ScaleInAfter, "scale-in-after", p.ScaleInAfter, "stabilisation window before scaling in")
}
