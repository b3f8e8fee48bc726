package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/classify"
	"github.com/nimbus-ml/nimbus/runtime/classify/classifytest"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/store"
	"github.com/nimbus-ml/nimbus/runtime/store/dirstore"
	"github.com/nimbus-ml/nimbus/runtime/worker"
)

// rig is a worker's surroundings: real queues and buckets.
type rig struct {
	input, output, dead *memqueue.Queue
	images, results     store.Bucket
}

func newRig(t *testing.T, lease time.Duration, maxReceives int) *rig {
	t.Helper()
	r := &rig{dead: memqueue.New(memqueue.Options{}), output: memqueue.New(memqueue.Options{})}
	r.input = memqueue.New(memqueue.Options{Visibility: lease, DeadLetter: r.dead, MaxReceives: maxReceives})
	var err error
	if r.images, err = dirstore.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if r.results, err = dirstore.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) worker(name string, in queue.Queue, c worker.Classifier, lease time.Duration) *worker.Worker {
	return &worker.Worker{
		Input: in, Output: r.output, DeadLetter: r.dead, Images: r.images, Results: r.results, Classifier: c,
		Config: worker.Config{Name: name, Lease: lease, ReceiveWait: 200 * time.Millisecond, DrainTimeout: 100 * time.Millisecond},
	}
}

// submit stores image and enqueues its claim check, as the web tier does.
func (r *rig) submit(t *testing.T, name string, image []byte) nimbus.JobID {
	t.Helper()
	ctx := context.Background()
	id := nimbus.NewJobID(time.Now())
	if err := r.images.Put(ctx, id.InputKey(), image, store.Attrs{}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(nimbus.Job{ID: id, Key: id.InputKey(), Name: name, Submitted: time.Now()})
	if _, err := r.input.Send(ctx, body); err != nil {
		t.Fatal(err)
	}
	return id
}

// start runs w until the test ends.
func start(t *testing.T, w *worker.Worker) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})
	return cancel
}

// results drains the output queue for d and returns every result seen.
func (r *rig) announced(t *testing.T, d time.Duration) []nimbus.Result {
	t.Helper()
	var out []nimbus.Result
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		msgs, err := r.output.Receive(context.Background(), 10, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			res, err := nimbus.DecodeResult(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, res)
			r.output.Delete(context.Background(), m.Receipt)
		}
	}
	return out
}

func (r *rig) stored(t *testing.T, id nimbus.JobID) nimbus.Result {
	t.Helper()
	raw, _, err := r.results.Get(context.Background(), id.ResultKey())
	if err != nil {
		t.Fatalf("reading result of %s: %v", id, err)
	}
	res, err := nimbus.DecodeResult(raw)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func photo(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(classifytest.PhotosDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// counting wraps a classifier, counting calls; block, if set, holds the
// first call until its context ends, like a job caught by a shutdown.
type counting struct {
	c     worker.Classifier
	calls atomic.Int32
	block bool
	err   error
}

func (k *counting) Classify(ctx context.Context, image []byte) (classify.Classification, error) {
	if n := k.calls.Add(1); k.block && n == 1 {
		<-ctx.Done()
		return classify.Classification{}, ctx.Err()
	}
	if k.err != nil {
		return classify.Classification{}, k.err
	}
	return k.c.Classify(ctx, image)
}

func waitEmpty(t *testing.T, q queue.Queue) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if d, _ := q.Depth(context.Background()); d.Total() == 0 {
			return
		}
	}
	d, _ := q.Depth(context.Background())
	t.Fatalf("queue still holds %+v", d)
}

func TestWorker(t *testing.T) {
	c := classifytest.MustOpen(t, 1)
	parrot := photo(t, "coral_parrot.jpg")
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"classifies and acknowledges", func(t *testing.T) {
			r := newRig(t, 5*time.Second, 3)
			id := r.submit(t, "parrot.jpg", parrot)
			start(t, r.worker("w1", r.input, c, 5*time.Second))
			waitEmpty(t, r.input)
			got := r.announced(t, 300*time.Millisecond)
			if len(got) != 1 || got[0].ID != id || got[0].Label != "macaw" || got[0].Status != nimbus.StatusDone {
				t.Fatalf("results %+v, want one macaw for %s", got, id)
			}
			if s := r.stored(t, id); s.Label != "macaw" || s.Name != "parrot.jpg" || s.Timings.InferenceMs <= 0 {
				t.Fatalf("stored result %+v", s)
			}
		}},
		{"undecodable image fails at once", func(t *testing.T) {
			r := newRig(t, 5*time.Second, 3)
			k := &counting{c: c}
			id := r.submit(t, "half.jpg", parrot[:len(parrot)/3])
			start(t, r.worker("w1", r.input, k, 5*time.Second))
			waitEmpty(t, r.input)
			got := r.announced(t, 300*time.Millisecond)
			if len(got) != 1 || got[0].Status != nimbus.StatusFailed || got[0].Error == "" || got[0].Code != nimbus.EUNDECODABLE {
				t.Fatalf("results %+v, want one undecodable failure", got)
			}
			if k.calls.Load() != 1 || got[0].Attempts != 1 {
				t.Fatalf("classified %d times over %d attempts, want 1: no retry loop", k.calls.Load(), got[0].Attempts)
			}
			if s := r.stored(t, id); s.Status != nimbus.StatusFailed {
				t.Fatalf("stored status %s, want failed", s.Status)
			}
		}},
		{"redelivered finished job is announced, not reclassified", func(t *testing.T) {
			r := newRig(t, 5*time.Second, 3)
			id := r.submit(t, "parrot.jpg", parrot)
			done, _ := json.Marshal(nimbus.Result{ID: id, Name: "parrot.jpg", Status: nimbus.StatusDone, Label: "macaw"})
			r.results.Put(context.Background(), id.ResultKey(), done, store.Attrs{})
			k := &counting{c: c}
			start(t, r.worker("w1", r.input, k, 5*time.Second))
			waitEmpty(t, r.input)
			if got := r.announced(t, 300*time.Millisecond); len(got) != 1 || got[0].Label != "macaw" {
				t.Fatalf("results %+v, want the stored one re-announced", got)
			}
			if k.calls.Load() != 0 {
				t.Fatalf("classified %d times, want 0", k.calls.Load())
			}
		}},
		{"dead-lettered job reads failed", func(t *testing.T) {
			r := newRig(t, 200*time.Millisecond, 2)
			id := r.submit(t, "parrot.jpg", parrot)
			k := &counting{c: c, err: errors.New("GPU on fire")}
			w := r.worker("w1", r.input, k, 200*time.Millisecond)
			start(t, w)
			got := r.announced(t, 3*time.Second)
			if len(got) != 1 || got[0].Status != nimbus.StatusFailed || got[0].ID != id || got[0].Code != nimbus.EINTERNAL {
				t.Fatalf("results %+v, want one internal failure for %s", got, id)
			}
			if k.calls.Load() != 2 {
				t.Errorf("tried %d times, want 2 (the queue's max receives)", k.calls.Load())
			}
			waitEmpty(t, r.dead)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// dying is a queue handle that stops working when its process "dies": the
// worker can neither extend, release nor delete.
type dying struct {
	queue.Queue
	dead atomic.Bool
}

var errDead = errors.New("process is gone")

func (d *dying) Delete(ctx context.Context, r string) error {
	if d.dead.Load() {
		return errDead
	}
	return d.Queue.Delete(ctx, r)
}

func (d *dying) ChangeVisibility(ctx context.Context, r string, v time.Duration) error {
	if d.dead.Load() {
		return errDead
	}
	return d.Queue.ChangeVisibility(ctx, r, v)
}

func TestWorkerStoppedMidJobYieldsExactlyOneResult(t *testing.T) {
	c := classifytest.MustOpen(t, 1)
	parrot := photo(t, "coral_parrot.jpg")
	tests := []struct {
		name  string
		crash bool // killed outright rather than stopped with SIGTERM
	}{
		{"stopped, drain times out, job released", false},
		{"killed, job returns after its lease", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lease := 600 * time.Millisecond
			r := newRig(t, lease, 5)
			id := r.submit(t, "parrot.jpg", parrot)
			first := &dying{Queue: r.input}
			blocked := &counting{c: c, block: true}
			stop := start(t, r.worker("first", first, blocked, lease))
			for blocked.calls.Load() == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			if tc.crash {
				first.dead.Store(true)
			}
			stop() // the blocked job ends with its context after the drain timeout
			start(t, r.worker("second", r.input, c, lease))
			waitEmpty(t, r.input)
			got := r.announced(t, time.Second)
			if len(got) != 1 || got[0].ID != id || got[0].Label != "macaw" || got[0].Worker != "second" {
				t.Fatalf("results %+v, want exactly one macaw from the second worker", got)
			}
			if s := r.stored(t, id); s.Status != nimbus.StatusDone || s.Attempts != 2 {
				t.Fatalf("stored %+v, want done on attempt 2", s)
			}
		})
	}
}
