// Package procfleet is a fleet.Fleet of worker loops inside this process, for
// the embedded local mode. Scaling in stops idle workers first; a busy worker
// asked to stop finishes its job before it exits.
package procfleet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nimbus-ml/nimbus/runtime/fleet"
)

// Worker is one loop the fleet runs: Run returns after ctx ends and its work
// is drained.
type Worker interface {
	Run(ctx context.Context) error
	Busy() int
}

// Fleet runs Workers made by its factory.
type Fleet struct {
	newWorker func(name string) Worker

	mu      sync.Mutex
	desired int
	active  []*member
	next    int
	closed  bool
	wg      sync.WaitGroup
	errs    []error
}

type member struct {
	w    Worker
	stop context.CancelFunc
}

var _ fleet.Fleet = (*Fleet)(nil)

// New returns an empty fleet; newWorker makes each worker.
func New(newWorker func(name string) Worker) *Fleet {
	return &Fleet{newWorker: newWorker}
}

// Status implements fleet.Fleet; local workers start at once.
func (f *Fleet) Status(ctx context.Context) (fleet.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fleet.Status{Desired: f.desired, Running: len(f.active)}, nil
}

// Scale implements fleet.Fleet.
func (f *Fleet) Scale(ctx context.Context, desired int) error {
	if desired < 0 {
		return fmt.Errorf("desired workers %d must not be negative", desired)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("fleet is closed")
	}
	f.desired = desired
	for len(f.active) < desired {
		f.next++
		m := &member{w: f.newWorker(fmt.Sprintf("local-%d", f.next))}
		var runCtx context.Context
		runCtx, m.stop = context.WithCancel(context.Background())
		f.active = append(f.active, m)
		f.wg.Go(func() {
			if err := m.w.Run(runCtx); err != nil {
				f.mu.Lock()
				f.errs = append(f.errs, err)
				f.mu.Unlock()
			}
		})
	}
	for len(f.active) > desired {
		// Prefer an idle worker; a busy one drains its job before exiting.
		victim := len(f.active) - 1
		for i, m := range f.active {
			if m.w.Busy() == 0 {
				victim = i
				break
			}
		}
		f.active[victim].stop()
		f.active = append(f.active[:victim], f.active[victim+1:]...)
	}
	return nil
}

// Close stops every worker and waits for them to drain.
func (f *Fleet) Close() error {
	f.mu.Lock()
	f.closed = true
	for _, m := range f.active {
		m.stop()
	}
	f.active = nil
	f.mu.Unlock()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := errors.Join(f.errs...); err != nil {
		return fmt.Errorf("workers failed: %w", err)
	}
	return nil
}
