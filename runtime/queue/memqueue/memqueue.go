// Package memqueue is an in-process queue.Queue with SQS semantics, for the
// embedded local mode and for tests.
package memqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/queue"
)

// Options configure a Queue. The zero value is usable.
type Options struct {
	// Visibility hides a received message for this long (default 30s).
	Visibility time.Duration
	// DeadLetter receives a message instead of it being delivered for the
	// (MaxReceives+1)th time; both must be set to enable dead-lettering.
	DeadLetter  *Queue
	MaxReceives int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Queue is an in-memory queue. Its zero value is not usable; call New.
type Queue struct {
	opts Options

	mu       sync.Mutex
	entries  []*entry // in send order
	receipts map[string]*entry
	changed  chan struct{} // closed and replaced whenever a message may have become visible
}

type entry struct {
	id           string
	body         []byte
	sent         time.Time
	receiveCount int
	visibleAt    time.Time
	receipt      string
}

var _ queue.Queue = (*Queue)(nil)

// New returns an empty queue.
func New(opts Options) *Queue {
	if opts.Visibility <= 0 {
		opts.Visibility = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Queue{opts: opts, receipts: map[string]*entry{}, changed: make(chan struct{})}
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// notifyLocked wakes every waiting Receive.
func (q *Queue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Send implements queue.Queue.
func (q *Queue) Send(ctx context.Context, body []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("sending message: %w", err)
	}
	now := q.opts.Now()
	e := &entry{id: randomID(), body: append([]byte(nil), body...), sent: now, visibleAt: now}
	q.mu.Lock()
	q.entries = append(q.entries, e)
	q.notifyLocked()
	q.mu.Unlock()
	return e.id, nil
}

// Receive implements queue.Queue.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	if max < 1 || max > 10 {
		return nil, nimbus.Errorf(nimbus.EINVALID, "receive batch size %d is outside 1..10", max)
	}
	deadline := time.Now().Add(wait)
	for {
		q.mu.Lock()
		msgs, nextVisible, dead := q.takeLocked(max)
		changed := q.changed
		q.mu.Unlock()
		for _, e := range dead {
			if _, err := q.opts.DeadLetter.Send(ctx, e.body); err != nil {
				return nil, fmt.Errorf("moving message %s to the dead-letter queue: %w", e.id, err)
			}
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
		sleep := time.Until(deadline)
		if sleep <= 0 {
			return nil, nil
		}
		if !nextVisible.IsZero() {
			sleep = min(sleep, nextVisible.Sub(q.opts.Now())+time.Millisecond)
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("receiving messages: %w", ctx.Err())
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// takeLocked delivers up to max visible messages, removes those that have
// used up their receives, and reports when the next hidden message shows.
func (q *Queue) takeLocked(max int) (msgs []queue.Message, nextVisible time.Time, dead []*entry) {
	now := q.opts.Now()
	kept := q.entries[:0]
	for _, e := range q.entries {
		switch {
		case e.visibleAt.After(now) || len(msgs) == max:
			if e.visibleAt.After(now) && (nextVisible.IsZero() || e.visibleAt.Before(nextVisible)) {
				nextVisible = e.visibleAt
			}
		case q.opts.DeadLetter != nil && q.opts.MaxReceives > 0 && e.receiveCount >= q.opts.MaxReceives:
			delete(q.receipts, e.receipt)
			dead = append(dead, e)
			continue
		default:
			delete(q.receipts, e.receipt)
			e.receiveCount++
			e.receipt = e.id + "." + randomID()
			e.visibleAt = now.Add(q.opts.Visibility)
			q.receipts[e.receipt] = e
			msgs = append(msgs, queue.Message{
				ID: e.id, Body: append([]byte(nil), e.body...), Receipt: e.receipt,
				ReceiveCount: e.receiveCount, Sent: e.sent,
			})
		}
		kept = append(kept, e)
	}
	clear(q.entries[len(kept):])
	q.entries = kept
	return msgs, nextVisible, dead
}

// lookupLocked finds the message a receipt was issued for, if that receipt is
// still the latest.
func (q *Queue) lookupLocked(receipt string) (*entry, error) {
	e, ok := q.receipts[receipt]
	if !ok {
		return nil, nimbus.Errorf(nimbus.ENOTFOUND, "receipt handle is stale or unknown")
	}
	return e, nil
}

// Delete implements queue.Queue. A stale receipt gives an ENOTFOUND error.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.lookupLocked(receipt)
	if err != nil {
		return fmt.Errorf("deleting message: %w", err)
	}
	delete(q.receipts, receipt)
	for i, x := range q.entries {
		if x == e {
			q.entries = append(q.entries[:i], q.entries[i+1:]...)
			break
		}
	}
	return nil
}

// ChangeVisibility implements queue.Queue.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if d < 0 || d > 12*time.Hour {
		return nimbus.Errorf(nimbus.EINVALID, "visibility timeout %v is outside 0..12h", d)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	e, err := q.lookupLocked(receipt)
	if err != nil {
		return fmt.Errorf("changing message visibility: %w", err)
	}
	e.visibleAt = q.opts.Now().Add(d)
	if d == 0 {
		q.notifyLocked()
	}
	return nil
}

// Depth implements queue.Queue; the counts are exact.
func (q *Queue) Depth(ctx context.Context) (queue.Depth, error) {
	now := q.opts.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	var d queue.Depth
	for _, e := range q.entries {
		if e.visibleAt.After(now) {
			d.InFlight++
		} else {
			d.Visible++
		}
	}
	return d, nil
}
