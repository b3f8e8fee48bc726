package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/nimbus-ml/nimbus/runtime/awsclients"
	"github.com/nimbus-ml/nimbus/runtime/fleet"
	"github.com/nimbus-ml/nimbus/runtime/fleet/asgfleet"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/sqsqueue"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
	"github.com/nimbus-ml/nimbus/runtime/store"
	"github.com/nimbus-ml/nimbus/runtime/store/s3store"
	"github.com/nimbus-ml/nimbus/runtime/web"
	"github.com/nimbus-ml/nimbus/runtime/worker"
)

// backendFlags name the AWS resources a tier uses. Endpoint overrides for
// AWS-compatible servers come from NIMBUS_AWS_ENDPOINT and the per-service
// NIMBUS_SQS_ENDPOINT, NIMBUS_S3_ENDPOINT, NIMBUS_AUTOSCALING_ENDPOINT.
type backendFlags struct {
	backend         string
	region          string
	inputQueue      string
	outputQueue     string
	deadLetterQueue string
	inputBucket     string
	outputBucket    string
	sse             string
	group           string
	hook            string
}

func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.backend, "backend", "", "where queues, buckets and workers live: aws (the in-memory backend runs only inside 'nimbus local')")
	fs.StringVar(&b.region, "region", "", "AWS region (default from NIMBUS_AWS_REGION or AWS_REGION)")
	fs.StringVar(&b.inputQueue, "input-queue", "", "input SQS queue URL")
	fs.StringVar(&b.outputQueue, "output-queue", "", "output SQS queue URL")
	fs.StringVar(&b.deadLetterQueue, "dead-letter-queue", "", "the input queue's dead-letter queue URL")
	fs.StringVar(&b.inputBucket, "input-bucket", "", "S3 bucket for uploaded images")
	fs.StringVar(&b.outputBucket, "output-bucket", "", "S3 bucket for results")
	fs.StringVar(&b.sse, "s3-sse", "", "server-side encryption to request on writes: AES256 or aws:kms (default: the bucket's default)")
	fs.StringVar(&b.group, "group", "", "the workers' Auto Scaling group name")
	fs.StringVar(&b.hook, "lifecycle-hook", asgfleet.DefaultHook, "the group's termination lifecycle hook, which lets workers drain")
}

// need reports, for each flag a tier requires, how to set it.
func (b *backendFlags) need(names ...string) error {
	values := map[string]string{
		"input-queue": b.inputQueue, "output-queue": b.outputQueue, "dead-letter-queue": b.deadLetterQueue,
		"input-bucket": b.inputBucket, "output-bucket": b.outputBucket, "group": b.group,
	}
	var errs []error
	if b.sse != "" && b.sse != "AES256" && b.sse != "aws:kms" {
		errs = append(errs, fmt.Errorf("--s3-sse %q: use AES256, aws:kms, or leave it empty for the bucket's default", b.sse))
	}
	if b.backend != "aws" {
		errs = append(errs, fmt.Errorf("--backend %q: set --backend aws (NIMBUS_BACKEND=aws); the in-memory backend runs only inside 'nimbus local'", b.backend))
	}
	for _, n := range names {
		if values[n] == "" {
			errs = append(errs, fmt.Errorf("--%s is missing: set it or %s", n, envName(n)))
		}
	}
	return errors.Join(errs...)
}

// clients builds the AWS clients; credentials come only from the SDK's
// default chain (the instance profile on EC2).
func (b *backendFlags) clients(ctx context.Context) (*awsclients.Clients, error) {
	cfg, err := awsclients.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if b.region != "" {
		cfg.Region = b.region
	}
	return awsclients.New(ctx, cfg)
}

func (b *backendFlags) queue(cl *awsclients.Clients, url string) (queue.Queue, error) {
	if url == "" {
		return nil, nil
	}
	return sqsqueue.Open(cl.SQS, url, nil)
}

// fleet opens the worker group, or returns nil when no group is named.
func (b *backendFlags) fleet(cl *awsclients.Clients) (fleet.Fleet, error) {
	if b.group == "" {
		return nil, nil
	}
	return asgfleet.Open(cl.AutoScaling, b.group)
}

func (b *backendFlags) bucket(cl *awsclients.Clients, name string) (store.Bucket, error) {
	return s3store.Open(cl.S3, name, &s3store.Options{ServerSideEncryption: s3types.ServerSideEncryption(b.sse)})
}

// openAll opens the named queues and buckets, stopping at the first failure.
func openAll(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// serve runs an HTTP server in g until ctx ends, then shuts it down.
func serve(ctx context.Context, g *errgroup.Group, addr string, h http.Handler, grace time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("listening", "addr", ln.Addr().String())
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		return srv.Shutdown(shutdown)
	})
	return nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func runWeb(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	var (
		logs         logFlags
		be           backendFlags
		cfg          web.Config
		addr         string
		maxUploadMiB int
	)
	logs.register(fs)
	be.register(fs)
	fs.StringVar(&addr, "addr", ":8080", "listen address")
	fs.IntVar(&maxUploadMiB, "max-upload-mib", 10, "largest accepted image, in MiB")
	fs.IntVar(&cfg.MaxPixels, "max-upload-pixels", 40_000_000, "largest accepted image, in pixels (checked from the header)")
	fs.DurationVar(&cfg.WaitTimeout, "wait-timeout", 60*time.Second, "how long POST /classify waits for its result")
	fs.IntVar(&cfg.MaxPending, "max-pending", 1000, "jobs in progress beyond which uploads get 503")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.MaxUploadBytes = int64(maxUploadMiB) << 20
	logger, err := logs.logger()
	if err != nil {
		return err
	}
	if err := be.need("input-queue", "output-queue", "input-bucket", "output-bucket"); err != nil {
		return err
	}
	cl, err := be.clients(ctx)
	if err != nil {
		return err
	}
	srv := &web.Server{Config: cfg, Registry: newRegistry(), Logger: logger}
	var output, deadLetter queue.Queue
	var workers fleet.Fleet
	if err := openAll(
		func() (err error) { srv.Input, err = be.queue(cl, be.inputQueue); return },
		func() (err error) { output, err = be.queue(cl, be.outputQueue); return },
		func() (err error) { deadLetter, err = be.queue(cl, be.deadLetterQueue); return },
		func() (err error) { srv.Images, err = be.bucket(cl, be.inputBucket); return },
		func() (err error) { srv.Results, err = be.bucket(cl, be.outputBucket); return },
		func() (err error) { workers, err = be.fleet(cl); return },
	); err != nil {
		return err
	}
	// /metrics shows the backlog and the fleet even though the scaler runs in
	// its own process.
	srv.Registry.MustRegister(&scaler.Collector{
		Queues: map[string]queue.Queue{"input": srv.Input, "dead_letter": deadLetter}, Fleet: workers,
	})
	srv.Dispatcher = web.NewDispatcher(output, logger)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Dispatcher.Run(gctx) })
	if err := serve(gctx, g, addr, srv.Handler(), cfg.WaitTimeout+5*time.Second, logger); err != nil {
		return err
	}
	return g.Wait()
}

func runWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	var (
		logs        logFlags
		be          backendFlags
		model       modelFlags
		cfg         worker.Config
		metricsAddr string
	)
	logs.register(fs)
	be.register(fs)
	model.register(fs)
	fs.StringVar(&cfg.Name, "name", hostname(), "worker name in results and logs")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "jobs in hand at once (default: twice --sessions, so fetching and decoding overlap inference)")
	fs.DurationVar(&cfg.Lease, "lease", 60*time.Second, "message visibility per extension while a job runs")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 90*time.Second, "on SIGTERM or scale-in, how long jobs in hand may finish before release")
	fs.IntVar(&cfg.MaxReceives, "max-receives", 3, "the input queue's maxReceiveCount, quoted in dead-letter failures")
	fs.StringVar(&metricsAddr, "metrics-addr", ":9100", "listen address for /metrics and /healthz")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := logs.logger()
	if err != nil {
		return err
	}
	if err := be.need("input-queue", "output-queue", "input-bucket", "output-bucket"); err != nil {
		return err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2 * model.sessions
	}
	cl, err := be.clients(ctx)
	if err != nil {
		return err
	}
	reg := newRegistry()
	cfg.Logger, cfg.Metrics = logger, worker.NewMetrics(reg)
	w := &worker.Worker{Config: cfg}
	if err := openAll(
		func() (err error) { w.Input, err = be.queue(cl, be.inputQueue); return },
		func() (err error) { w.Output, err = be.queue(cl, be.outputQueue); return },
		func() (err error) { w.DeadLetter, err = be.queue(cl, be.deadLetterQueue); return },
		func() (err error) { w.Images, err = be.bucket(cl, be.inputBucket); return },
		func() (err error) { w.Results, err = be.bucket(cl, be.outputBucket); return },
	); err != nil {
		return err
	}
	// In a group, the instance drains itself when chosen for termination.
	var drainer *asgfleet.Drainer
	if be.group != "" {
		if drainer, err = asgfleet.NewDrainer(ctx, cl.IMDS, cl.AutoScaling, asgfleet.DrainerOptions{
			Group: be.group, Hook: be.hook, Logger: logger,
		}); err != nil {
			return fmt.Errorf("--group %s needs instance metadata to drain on scale-in (unset --group off EC2): %w", be.group, err)
		}
	}
	classifier, err := model.open(ctx, logger)
	if err != nil {
		return err
	}
	defer classifier.Close()
	w.Classifier = classifier

	g, gctx := errgroup.WithContext(ctx)
	workerCtx, stopWorker := context.WithCancel(gctx)
	defer stopWorker()
	workerDone := make(chan struct{})
	g.Go(func() error { defer close(workerDone); return w.Run(workerCtx) })
	if drainer != nil {
		g.Go(func() error {
			if err := drainer.Watch(gctx); err != nil {
				return nil // shutting down anyway
			}
			return drainer.Drain(gctx, func(context.Context) error { stopWorker(); <-workerDone; return nil })
		})
	}
	metricsCtx, stopMetrics := context.WithCancel(gctx)
	g.Go(func() error { <-workerDone; stopMetrics(); return nil })
	if err := serve(metricsCtx, g, metricsAddr, metricsHandler(reg), 5*time.Second, logger); err != nil {
		stopWorker()
		<-workerDone
		return err
	}
	logger.Info("worker running", "name", cfg.Name, "concurrency", cfg.Concurrency)
	return g.Wait()
}

func hostname() string {
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "worker"
}

func runScaler(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scaler", flag.ContinueOnError)
	var (
		logs        logFlags
		be          backendFlags
		policy      = scaler.DefaultPolicy()
		interval    time.Duration
		metricsAddr string
	)
	logs.register(fs)
	be.register(fs)
	registerPolicy(fs, &policy)
	fs.DurationVar(&interval, "scale-interval", 5*time.Second, "how often the scaler observes the queue")
	fs.StringVar(&metricsAddr, "metrics-addr", ":9101", "listen address for /metrics and /healthz")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := logs.logger()
	if err != nil {
		return err
	}
	if err := errors.Join(be.need("input-queue", "group"), policy.Validate()); err != nil {
		return err
	}
	cl, err := be.clients(ctx)
	if err != nil {
		return err
	}
	var input, deadLetter queue.Queue
	var group fleet.Fleet
	if err := openAll(
		func() (err error) { input, err = be.queue(cl, be.inputQueue); return },
		func() (err error) { deadLetter, err = be.queue(cl, be.deadLetterQueue); return },
		func() (err error) { group, err = be.fleet(cl); return },
	); err != nil {
		return err
	}
	reg := newRegistry()
	reg.MustRegister(&scaler.Collector{
		Queues: map[string]queue.Queue{"input": input, "dead_letter": deadLetter}, Fleet: group,
	})
	sc := scaler.New(input, deadLetter, group, policy)
	sc.Interval, sc.Logger = interval, logger
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sc.Run(gctx) })
	if err := serve(gctx, g, metricsAddr, metricsHandler(reg), 5*time.Second, logger); err != nil {
		return err
	}
	logger.Info("scaler running", "group", be.group, "min", policy.Min, "max", policy.Max)
	return g.Wait()
}
