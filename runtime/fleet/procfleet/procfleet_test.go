package procfleet_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/fleet/procfleet"
)

// loop is a worker that holds a job while busy is set and records whether it
// was stopped before finishing it.
type loop struct {
	name    string
	busy    atomic.Bool
	release chan struct{}
	stopped atomic.Bool
}

func (l *loop) Run(ctx context.Context) error {
	<-ctx.Done()
	l.stopped.Store(true)
	if l.busy.Load() {
		<-l.release // a busy worker drains: it finishes its job first
		l.busy.Store(false)
	}
	return nil
}

func (l *loop) Busy() int {
	if l.busy.Load() {
		return 1
	}
	return 0
}

func TestScaleInStopsIdleWorkersFirstAndNeverKillsABusyOne(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	made := map[string]*loop{}
	f := procfleet.New(func(name string) procfleet.Worker {
		mu.Lock()
		defer mu.Unlock()
		l := &loop{name: name, release: make(chan struct{})}
		made[name] = l
		return l
	})
	ctx := context.Background()
	if err := f.Scale(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.Status(ctx); s.Desired != 3 || s.Running != 3 {
		t.Fatalf("status %+v, want 3 desired and running", s)
	}
	// local-1 and local-3 hold jobs; only local-2 is idle.
	made["local-1"].busy.Store(true)
	made["local-3"].busy.Store(true)
	if err := f.Scale(ctx, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return made["local-2"].stopped.Load() })
	if made["local-1"].stopped.Load() || made["local-3"].stopped.Load() {
		t.Fatal("scale-in stopped a busy worker while an idle one was there")
	}
	// With only busy workers left, one is asked to stop and drains its job.
	if err := f.Scale(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var draining *loop
	waitFor(t, func() bool {
		for _, n := range []string{"local-1", "local-3"} {
			if made[n].stopped.Load() {
				draining = made[n]
				return true
			}
		}
		return false
	})
	if !draining.busy.Load() {
		t.Fatal("the stopped worker dropped its job instead of draining it")
	}
	close(draining.release)
	for _, l := range made {
		if l != draining && l.busy.Load() {
			close(l.release)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for name, l := range made {
		if !l.stopped.Load() || l.busy.Load() {
			t.Errorf("%s: stopped %v busy %v after Close, want stopped and idle", name, l.stopped.Load(), l.busy.Load())
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}
