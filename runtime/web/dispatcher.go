package web

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/queue"
)

// Dispatcher reads the output queue and hands each result to the requests
// waiting for it. There is one per web process. A result nobody waits for is
// only acknowledged: it is already in the output bucket.
type Dispatcher struct {
	output queue.Queue
	logger *slog.Logger
	wait   time.Duration

	mu      sync.Mutex
	waiters map[nimbus.JobID][]chan nimbus.Result
	pending map[nimbus.JobID]time.Time // accepted here, no result seen yet
	healthy bool
}

// NewDispatcher returns a dispatcher for the output queue; call Run.
func NewDispatcher(output queue.Queue, logger *slog.Logger) *Dispatcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		output: output, logger: logger, wait: 20 * time.Second,
		waiters: map[nimbus.JobID][]chan nimbus.Result{}, pending: map[nimbus.JobID]time.Time{},
	}
}

// Accepted records a job as pending until its result is seen.
func (d *Dispatcher) Accepted(id nimbus.JobID, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending[id] = now
}

// Pending counts jobs accepted by this process whose result has not been
// seen, forgetting any older than maxAge (their result went elsewhere).
func (d *Dispatcher) Pending(now time.Time, maxAge time.Duration) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, at := range d.pending {
		if now.Sub(at) > maxAge {
			delete(d.pending, id)
		}
	}
	return len(d.pending)
}

// Register returns a channel that receives id's result, and a cancel func
// that must be called when the caller stops waiting. Register before the job
// is sent, or a fast result can be missed.
func (d *Dispatcher) Register(id nimbus.JobID) (<-chan nimbus.Result, func()) {
	ch := make(chan nimbus.Result, 1)
	d.mu.Lock()
	d.waiters[id] = append(d.waiters[id], ch)
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		list := d.waiters[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(d.waiters, id)
		} else {
			d.waiters[id] = list
		}
	}
}

// deliver wakes every waiter of r's job.
func (d *Dispatcher) deliver(r nimbus.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pending, r.ID)
	for _, ch := range d.waiters[r.ID] {
		select {
		case ch <- r:
		default: // already has a result: a duplicate delivery
		}
	}
}

// Healthy reports whether the last receive from the output queue worked.
func (d *Dispatcher) Healthy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.healthy
}

func (d *Dispatcher) setHealthy(ok bool) {
	d.mu.Lock()
	d.healthy = ok
	d.mu.Unlock()
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.setHealthy(true)
	defer d.setHealthy(false)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		msgs, err := d.output.Receive(ctx, 10, d.wait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d.setHealthy(false)
			backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
			d.logger.Warn("receiving results failed; backing off", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff + rand.N(backoff/2))
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		backoff = 0
		d.setHealthy(true)
		receipts := make([]string, 0, len(msgs))
		for _, m := range msgs {
			if r, err := nimbus.DecodeResult(m.Body); err != nil {
				d.logger.Error("dropping malformed result message", "message", m.ID, "err", err)
			} else {
				d.deliver(r)
			}
			receipts = append(receipts, m.Receipt)
		}
		// A failed delete only means the result comes again; waiters take the
		// first copy.
		if err := d.acknowledge(ctx, receipts); err != nil && ctx.Err() == nil {
			d.logger.Warn("deleting result messages failed", "err", err)
		}
	}
	return nil
}

// batchDeleter is a queue that deletes several messages in one request, as
// SQS can.
type batchDeleter interface {
	DeleteBatch(ctx context.Context, receipts []string) error
}

func (d *Dispatcher) acknowledge(ctx context.Context, receipts []string) error {
	if bd, ok := d.output.(batchDeleter); ok {
		return bd.DeleteBatch(ctx, receipts)
	}
	var errs []error
	for _, r := range receipts {
		errs = append(errs, d.output.Delete(ctx, r))
	}
	return errors.Join(errs...)
}
