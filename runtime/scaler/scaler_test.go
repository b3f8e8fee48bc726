package scaler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/fleet"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
)

// recordingFleet remembers every size it was asked for.
type recordingFleet struct {
	mu      sync.Mutex
	desired int
	asked   []int
}

func (f *recordingFleet) Status(context.Context) (fleet.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fleet.Status{Desired: f.desired, Running: f.desired}, nil
}

func (f *recordingFleet) Scale(_ context.Context, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.desired = n
	f.asked = append(f.asked, n)
	return nil
}

func (f *recordingFleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired
}

func TestScalerLoop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	input := memqueue.New(memqueue.Options{})
	f := &recordingFleet{}
	p := scaler.Policy{Min: 0, Max: 20, TargetPerWorker: 4, ScaleInAfter: 300 * time.Millisecond}
	s := scaler.New(input, nil, f, p)
	// A long tick: anything faster than it came from a nudge.
	s.Interval = time.Hour
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// The web tier accepted 30 jobs that the queue does not show yet.
	s.Nudge(30)
	waitFor(t, func() bool { return f.size() == 8 }, "scale out to 8 on a nudge of 30 jobs")

	// Work done, queue empty: the next observation recommends 0, but the
	// fleet stays until the window has passed.
	s.Nudge(0)
	time.Sleep(100 * time.Millisecond)
	if n := f.size(); n != 8 {
		t.Fatalf("fleet shrank to %d within the stabilisation window", n)
	}
	time.Sleep(300 * time.Millisecond)
	s.Nudge(0)
	waitFor(t, func() bool { return f.size() == 0 }, "scale in to 0 after the window")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting to %s", what)
		}
	}
}
