// Package worker is the app tier's receive-infer-ack loop: take a claim check
// from the input queue, fetch the image, classify it, store the result in the
// output bucket, announce it on the output queue, then delete the message.
//
// Delivery is at least once, so every step is idempotent by job id: a
// redelivered job whose result is already stored is announced again, not
// classified again.
package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/classify"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/store"
)

// Classifier is what the worker needs of classify.Classifier.
type Classifier interface {
	Classify(ctx context.Context, image []byte) (classify.Classification, error)
}

// Config tunes a Worker. Zero values take the documented defaults.
type Config struct {
	// Name identifies the worker in results and logs (default "worker").
	Name string
	// Concurrency is how many jobs run at once (default 1).
	Concurrency int
	// Lease is how long a message stays hidden per extension; the worker
	// extends it every Lease/3 while a job runs (default 60s).
	Lease time.Duration
	// ReceiveWait is the long-poll wait (default 20s).
	ReceiveWait time.Duration
	// DrainTimeout bounds how long in-flight jobs may finish after Run's
	// context ends before they are released to other workers (default 60s).
	DrainTimeout time.Duration
	// MaxReceives is the input queue's dead-letter threshold, reported in
	// the failure of a dead-lettered job (0: unknown).
	MaxReceives int
	Now         func() time.Time
	Logger      *slog.Logger
	// Metrics, if set, records timings and failures.
	Metrics *Metrics
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "worker"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Lease <= 0 {
		c.Lease = 60 * time.Second
	}
	if c.ReceiveWait <= 0 {
		c.ReceiveWait = 20 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 60 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Worker processes jobs. Set the exported fields, then call Run.
type Worker struct {
	Input  queue.Queue
	Output queue.Queue
	// DeadLetter, if set, is the input queue's dead-letter queue: jobs found
	// there get a failed result.
	DeadLetter queue.Queue
	Images     store.Bucket
	Results    store.Bucket
	Classifier Classifier
	Config     Config

	busy atomic.Int32
}

// Busy is the number of jobs in hand.
func (w *Worker) Busy() int { return int(w.busy.Load()) }

// Run receives and processes jobs until ctx ends, then drains: it stops
// receiving, lets jobs in hand finish for up to DrainTimeout, and releases the
// rest to other workers. It returns once every goroutine it started is done.
func (w *Worker) Run(ctx context.Context) error {
	w.Config.setDefaults()
	// Jobs outlive ctx by the drain timeout, so they get their own context.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	var jobs sync.WaitGroup
	if w.DeadLetter != nil {
		jobs.Go(func() { w.reapDeadLetters(ctx) })
	}
	w.receiveLoop(ctx, jobCtx, &jobs)

	done := make(chan struct{})
	go func() { jobs.Wait(); close(done) }()
	timer := time.NewTimer(w.Config.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		w.Config.Logger.Warn("drain timed out; releasing jobs in hand", "worker", w.Config.Name, "busy", w.Busy())
		cancelJobs()
		<-done
	}
	return nil
}

func (w *Worker) receiveLoop(ctx, jobCtx context.Context, jobs *sync.WaitGroup) {
	slots := make(chan struct{}, w.Config.Concurrency)
	backoff := time.Duration(0)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		// Take every other free slot too: one receive fetches the batch.
		free := 1
	fill:
		for free < min(10, w.Config.Concurrency) {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}
		msgs, err := w.Input.Receive(ctx, free, w.Config.ReceiveWait)
		for range free - len(msgs) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
			w.Config.Logger.Warn("receiving jobs failed; backing off", "worker", w.Config.Name, "err", err, "backoff", backoff)
			sleep(ctx, backoff+rand.N(backoff/2))
			continue
		}
		backoff = 0
		for _, m := range msgs {
			w.busy.Add(1)
			jobs.Go(func() {
				defer func() { w.busy.Add(-1); <-slots }()
				w.handle(jobCtx, m)
			})
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle takes one delivery to a published result, or leaves it for
// redelivery when a dependency failed.
func (w *Worker) handle(ctx context.Context, m queue.Message) {
	log := w.Config.Logger.With("worker", w.Config.Name, "message", m.ID, "receive", m.ReceiveCount)
	job, err := nimbus.DecodeJob(m.Body)
	if err != nil {
		// No job id means no result can be recorded; keeping it would only
		// loop it to the dead-letter queue.
		log.Error("dropping malformed job message", "err", err)
		w.deleteMessage(ctx, w.Input, m, log)
		return
	}
	log = log.With("job", job.ID)
	stop := w.keepHidden(ctx, m, log)
	res, err := w.process(ctx, job, m.ReceiveCount)
	if err == nil {
		err = w.publish(ctx, res)
	}
	stop()
	if err != nil {
		if ctx.Err() != nil {
			// Drain timed out: hand the job to another worker now rather than
			// after the lease runs out.
			release, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := w.Input.ChangeVisibility(release, m.Receipt, 0); err != nil {
				log.Warn("releasing job failed; it returns when its lease ends", "err", err)
			}
			return
		}
		w.Config.Metrics.failure("retry")
		log.Warn("job failed; it will be retried", "err", err)
		return
	}
	log.Info("job finished", "status", res.Status, "label", res.Label, "ms", res.Timings.TotalMs)
	w.deleteMessage(ctx, w.Input, m, log)
}

func (w *Worker) deleteMessage(ctx context.Context, q queue.Queue, m queue.Message, log *slog.Logger) {
	if err := q.Delete(ctx, m.Receipt); err != nil {
		// Harmless: the message comes back and its stored result is re-announced.
		log.Warn("deleting message failed", "err", err)
	}
}

// keepHidden extends the message's lease until the returned stop is called.
func (w *Worker) keepHidden(ctx context.Context, m queue.Message, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(w.Config.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := w.Input.ChangeVisibility(ctx, m.Receipt, w.Config.Lease); err != nil && ctx.Err() == nil {
					log.Warn("extending job lease failed", "err", err)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// process returns the job's result: the stored one if it already ended, a
// failed one if the image is bad, or an error if a dependency failed.
func (w *Worker) process(ctx context.Context, job nimbus.Job, attempt int) (nimbus.Result, error) {
	start := w.Config.Now()
	if prev, err := w.storedResult(ctx, job.ID); err != nil {
		return nimbus.Result{}, err
	} else if prev.Status.Terminal() {
		return prev, nil
	}
	running := nimbus.Result{ID: job.ID, Name: job.Name, Status: nimbus.StatusRunning, Worker: w.Config.Name, Updated: start, Attempts: attempt}
	if err := w.putResult(ctx, running); err != nil {
		return nimbus.Result{}, err
	}

	image, _, err := w.Images.Get(ctx, job.Key)
	if nimbus.ErrorCode(err) == nimbus.ENOTFOUND {
		w.Config.Metrics.failure("missing_image")
		return w.failed(job, nimbus.ENOTFOUND, "the image is missing from the input bucket", attempt), nil
	} else if err != nil {
		return nimbus.Result{}, fmt.Errorf("fetching image %s: %w", job.Key, err)
	}
	fetched := w.Config.Now()
	c, err := w.Classifier.Classify(ctx, image)
	switch nimbus.ErrorCode(err) {
	case "":
	case nimbus.EINVALID, nimbus.EUNSUPPORTED, nimbus.EUNDECODABLE, nimbus.ETOOLARGE:
		// Retrying a bad image gives the same answer: fail it at once.
		w.Config.Metrics.failure("bad_image")
		return w.failed(job, nimbus.ErrorCode(err), nimbus.ErrorMessage(err), attempt), nil
	default:
		return nimbus.Result{}, fmt.Errorf("classifying: %w", err)
	}
	w.Config.Metrics.observe(c)
	end := w.Config.Now()
	return nimbus.Result{
		ID: job.ID, Name: job.Name, Status: nimbus.StatusDone,
		Label: c.Top5[0].Label, Score: c.Top5[0].Score, Top5: c.Top5,
		Timings: nimbus.Timings{
			QueuedMs:     ms(start.Sub(job.Submitted)),
			FetchMs:      ms(fetched.Sub(start)),
			PreprocessMs: ms(c.Preprocess),
			InferenceMs:  ms(c.Inference),
			TotalMs:      ms(end.Sub(job.Submitted)),
		},
		Worker: w.Config.Name, Updated: end, Attempts: attempt,
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (w *Worker) failed(job nimbus.Job, code, reason string, attempt int) nimbus.Result {
	r := nimbus.Failed(job, code, reason, w.Config.Now())
	r.Worker, r.Attempts = w.Config.Name, attempt
	r.Timings.TotalMs = ms(r.Updated.Sub(job.Submitted))
	return r
}

// storedResult returns the result object, or a zero Result if there is none.
func (w *Worker) storedResult(ctx context.Context, id nimbus.JobID) (nimbus.Result, error) {
	raw, _, err := w.Results.Get(ctx, id.ResultKey())
	if nimbus.ErrorCode(err) == nimbus.ENOTFOUND {
		return nimbus.Result{}, nil
	}
	if err != nil {
		return nimbus.Result{}, fmt.Errorf("reading stored result: %w", err)
	}
	return nimbus.DecodeResult(raw)
}

func (w *Worker) putResult(ctx context.Context, r nimbus.Result) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	attrs := store.Attrs{ContentType: "application/json"}
	if err := w.Results.Put(ctx, r.ID.ResultKey(), body, attrs); err != nil {
		return fmt.Errorf("storing %s result: %w", r.Status, err)
	}
	return nil
}

// publish stores a terminal result, then announces it; the store comes first
// so that an announced result can always be read back.
func (w *Worker) publish(ctx context.Context, r nimbus.Result) error {
	if err := w.putResult(ctx, r); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	if _, err := w.Output.Send(ctx, body); err != nil {
		return fmt.Errorf("sending result: %w", err)
	}
	return nil
}

// reapDeadLetters gives every dead-lettered job a failed result, so that no
// accepted image ends in silence.
func (w *Worker) reapDeadLetters(ctx context.Context) {
	log := w.Config.Logger.With("worker", w.Config.Name, "queue", "dead-letter")
	for ctx.Err() == nil {
		msgs, err := w.DeadLetter.Receive(ctx, 10, w.Config.ReceiveWait)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("receiving dead letters failed", "err", err)
				sleep(ctx, 5*time.Second)
			}
			continue
		}
		for _, m := range msgs {
			if err := w.reap(ctx, m); err != nil {
				log.Warn("recording dead-lettered job failed; will retry", "message", m.ID, "err", err)
				continue
			}
			w.deleteMessage(ctx, w.DeadLetter, m, log)
		}
	}
}

func (w *Worker) reap(ctx context.Context, m queue.Message) error {
	job, err := nimbus.DecodeJob(m.Body)
	if err != nil {
		return nil // nothing to record; deleting it is all that can be done
	}
	prev, err := w.storedResult(ctx, job.ID)
	if err != nil {
		return err
	}
	res := prev
	if !prev.Status.Terminal() {
		reason := "processing kept failing"
		if w.Config.MaxReceives > 0 {
			reason = fmt.Sprintf("processing failed %d times", w.Config.MaxReceives)
		}
		res = w.failed(job, nimbus.EINTERNAL, reason+"; the job was dead-lettered", prev.Attempts)
		w.Config.Metrics.failure("dead_letter")
		w.Config.Logger.Error("job dead-lettered", "job", job.ID, "attempts", prev.Attempts)
	}
	return w.publish(ctx, res)
}
