// Package local assembles the whole system in one process: the web tier, an
// in-memory input, output and dead-letter queue, buckets in a data directory,
// and a scaler sizing a fleet of in-process workers. It is what
// `nimbus local` runs, and what the end-to-end tests drive over HTTP.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/nimbus-ml/nimbus/runtime/fleet/procfleet"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
	"github.com/nimbus-ml/nimbus/runtime/store/dirstore"
	"github.com/nimbus-ml/nimbus/runtime/web"
	"github.com/nimbus-ml/nimbus/runtime/worker"
)

// Config describes a local system.
type Config struct {
	// Addr is the web tier's listen address, e.g. 127.0.0.1:8080.
	Addr string
	// DataDir holds the buckets: DataDir/input and DataDir/output.
	DataDir    string
	Classifier worker.Classifier
	Policy     scaler.Policy
	// ScaleInterval is the scaler's observation period.
	ScaleInterval time.Duration
	Web           web.Config
	// Lease and MaxReceives shape the input queue: its visibility timeout
	// and the receives before a job is dead-lettered.
	Lease       time.Duration
	MaxReceives int
	Logger      *slog.Logger
}

// System is a running local system.
type System struct {
	// URL is the web tier's base URL.
	URL string

	listener net.Listener
	server   *http.Server
	run      func(ctx context.Context) error
}

// Start opens the buckets and the listener; Run serves until its context
// ends. Starting and running are separate so callers learn the address (and
// tests can bind port 0) before serving.
func Start(cfg Config) (*System, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 60 * time.Second
	}
	if cfg.MaxReceives <= 0 {
		cfg.MaxReceives = 3
	}
	images, err := dirstore.Open(filepath.Join(cfg.DataDir, "input"))
	if err != nil {
		return nil, fmt.Errorf("opening input bucket: %w", err)
	}
	results, err := dirstore.Open(filepath.Join(cfg.DataDir, "output"))
	if err != nil {
		return nil, fmt.Errorf("opening output bucket: %w", err)
	}
	deadLetter := memqueue.New(memqueue.Options{})
	input := memqueue.New(memqueue.Options{Visibility: cfg.Lease, DeadLetter: deadLetter, MaxReceives: cfg.MaxReceives})
	output := memqueue.New(memqueue.Options{})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)
	workers := procfleet.New(func(name string) procfleet.Worker {
		return &worker.Worker{
			Input: input, Output: output, DeadLetter: deadLetter, Images: images, Results: results,
			Classifier: cfg.Classifier,
			Config: worker.Config{
				Name: name, Lease: cfg.Lease, MaxReceives: cfg.MaxReceives,
				// Short polls let idle local workers stop promptly on scale-in.
				ReceiveWait: time.Second, Logger: cfg.Logger, Metrics: metrics,
			},
		}
	})
	sc := scaler.New(input, deadLetter, workers, cfg.Policy)
	sc.Interval, sc.Logger = cfg.ScaleInterval, cfg.Logger
	reg.MustRegister(&scaler.Collector{
		Queues: map[string]queue.Queue{"input": input, "dead_letter": deadLetter}, Fleet: workers,
	})

	dispatcher := web.NewDispatcher(output, cfg.Logger)
	srv := &web.Server{
		Input: input, Images: images, Results: results, Dispatcher: dispatcher,
		Config: cfg.Web, Registry: reg, OnAccept: sc.Nudge, Logger: cfg.Logger,
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w (pick another with --addr)", cfg.Addr, err)
	}
	httpServer := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s := &System{URL: "http://" + ln.Addr().String(), listener: ln, server: httpServer}
	s.run = func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return dispatcher.Run(gctx) })
		g.Go(func() error { return sc.Run(gctx) })
		g.Go(func() error {
			if err := httpServer.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving HTTP: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			// Stop taking requests, let waiting ones get their results, then
			// drain the workers.
			shutdownCtx, cancel := context.WithTimeout(context.Background(), srv.Config.WaitTimeout+5*time.Second)
			defer cancel()
			return errors.Join(httpServer.Shutdown(shutdownCtx), workers.Close())
		})
		return g.Wait()
	}
	return s, nil
}

// Run serves until ctx ends, then shuts down in order and returns.
func (s *System) Run(ctx context.Context) error { return s.run(ctx) }
