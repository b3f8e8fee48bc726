// Package queuetest is the conformance suite every queue.Queue implementation
// passes, so that the worker and web tier can rely on the same semantics in
// process and on SQS.
package queuetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nimbus-ml/nimbus/runtime/queue"
)

// Options configure a queue made for one test.
type Options struct {
	// Visibility is the queue's default visibility timeout.
	Visibility time.Duration
	// MaxReceives, when positive, dead-letters a message on the receive after
	// that many; the harness then returns the dead-letter queue too.
	MaxReceives int
}

// Harness makes fresh queues on one backend.
type Harness interface {
	// MakeQueue creates an empty queue; dlq is nil unless opts.MaxReceives > 0.
	MakeQueue(ctx context.Context, t *testing.T, opts Options) (q, dlq queue.Queue)
	// Skip returns a non-empty reason when the backend is known to differ from
	// the documented SQS behaviour that the named test checks.
	Skip(test string) string
}

// RunConformance runs every contract test against the backend.
func RunConformance(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"SendReceiveDelete", testSendReceiveDelete},
		{"ReceiveEmptyWaits", testReceiveEmptyWaits},
		{"ReceiveHonoursContext", testReceiveHonoursContext},
		{"ReceiveBatchBounded", testReceiveBatchBounded},
		{"InvisibleWhileHeld", testInvisibleWhileHeld},
		{"VisibilityExpiryRedelivers", testVisibilityExpiryRedelivers},
		{"StaleReceiptDoesNotDelete", testStaleReceiptDoesNotDelete},
		{"ChangeVisibility", testChangeVisibility},
		{"DeadLetterAfterMaxReceives", testDeadLetterAfterMaxReceives},
		{"Depth", testDepth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each test waits on visibility timeouts; overlap them
			h := newHarness(t)
			if reason := h.Skip(tc.name); reason != "" {
				t.Skip(reason)
			}
			tc.fn(t, h)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustSend(ctx context.Context, t *testing.T, q queue.Queue, body string) string {
	t.Helper()
	id, err := q.Send(ctx, []byte(body))
	if err != nil {
		t.Fatalf("Send(%q): %v", body, err)
	}
	if id == "" {
		t.Fatalf("Send(%q) returned an empty message id", body)
	}
	return id
}

// receiveN receives until n messages arrived or the deadline passed.
func receiveN(ctx context.Context, t *testing.T, q queue.Queue, n int, within time.Duration) []queue.Message {
	t.Helper()
	var got []queue.Message
	deadline := time.Now().Add(within)
	for len(got) < n && time.Now().Before(deadline) {
		msgs, err := q.Receive(ctx, min(10, n-len(got)), time.Second)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages within %v, want %d", len(got), within, n)
	}
	return got
}

func expectNone(ctx context.Context, t *testing.T, q queue.Queue, wait time.Duration) {
	t.Helper()
	msgs, err := q.Receive(ctx, 10, wait)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("received %d messages (first %q), want none", len(msgs), msgs[0].Body)
	}
}

func bodies(msgs []queue.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	slices.Sort(out)
	return out
}

func testSendReceiveDelete(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: 30 * time.Second})
	want := []string{"alpha", "beta", `{"id":"gamma"}`}
	ids := map[string]bool{}
	for _, b := range want {
		ids[mustSend(ctx, t, q, b)] = true
	}
	got := receiveN(ctx, t, q, len(want), 10*time.Second)
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("bodies = %q, want %q", bodies(got), want)
	}
	for _, m := range got {
		if !ids[m.ID] {
			t.Errorf("message %q has id %q, which Send did not return", m.Body, m.ID)
		}
		if m.ReceiveCount != 1 {
			t.Errorf("message %q ReceiveCount = %d on first delivery, want 1", m.Body, m.ReceiveCount)
		}
		if m.Receipt == "" {
			t.Errorf("message %q has no receipt handle", m.Body)
		}
		if err := q.Delete(ctx, m.Receipt); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	expectNone(ctx, t, q, time.Second)
}

func testReceiveEmptyWaits(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: 30 * time.Second})
	start := time.Now()
	expectNone(ctx, t, q, time.Second)
	// A long poll that returns at once would make consumers spin.
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("Receive on an empty queue returned after %v, want it to wait about 1s", waited)
	}
}

func testReceiveHonoursContext(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: 30 * time.Second})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := q.Receive(cctx, 1, 20*time.Second)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Receive kept waiting 5s after its context was cancelled")
	}
}

func testReceiveBatchBounded(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: 30 * time.Second})
	for i := range 12 {
		mustSend(ctx, t, q, fmt.Sprintf("m%02d", i))
	}
	msgs, err := q.Receive(ctx, 10, time.Second)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) == 0 || len(msgs) > 10 {
		t.Fatalf("Receive(max 10) returned %d messages, want 1 to 10", len(msgs))
	}
	rest := receiveN(ctx, t, q, 12-len(msgs), 10*time.Second)
	all := append(msgs, rest...)
	seen := map[string]bool{}
	for _, m := range all {
		if seen[string(m.Body)] {
			t.Fatalf("message %q delivered twice while invisible", m.Body)
		}
		seen[string(m.Body)] = true
	}
}

func testInvisibleWhileHeld(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: 30 * time.Second})
	mustSend(ctx, t, q, "held")
	receiveN(ctx, t, q, 1, 10*time.Second)
	expectNone(ctx, t, q, time.Second)
}

func testVisibilityExpiryRedelivers(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: time.Second})
	id := mustSend(ctx, t, q, "again")
	first := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	second := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	if second.ID != id || string(second.Body) != "again" {
		t.Fatalf("redelivered %q (id %q), want %q (id %q)", second.Body, second.ID, "again", id)
	}
	if second.ReceiveCount != 2 {
		t.Errorf("ReceiveCount on redelivery = %d, want 2", second.ReceiveCount)
	}
	if second.Receipt == first.Receipt {
		t.Errorf("redelivery reused receipt handle %q", first.Receipt)
	}
}

func testStaleReceiptDoesNotDelete(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: time.Second})
	mustSend(ctx, t, q, "keep")
	stale := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	fresh := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	_ = q.Delete(ctx, stale.Receipt) // SQS may accept it silently; what matters is the effect
	if err := q.ChangeVisibility(ctx, fresh.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility(fresh receipt, 0): %v", err)
	}
	again := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	if string(again.Body) != "keep" {
		t.Fatalf("received %q, want %q", again.Body, "keep")
	}
	if err := q.Delete(ctx, again.Receipt); err != nil {
		t.Fatalf("Delete(latest receipt): %v", err)
	}
	expectNone(ctx, t, q, 2*time.Second)
}

func testChangeVisibility(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: time.Second})
	mustSend(ctx, t, q, "extended")
	m := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	if err := q.ChangeVisibility(ctx, m.Receipt, 30*time.Second); err != nil {
		t.Fatalf("ChangeVisibility(30s): %v", err)
	}
	expectNone(ctx, t, q, 2*time.Second) // past the 1s default, still hidden
	if err := q.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	back := receiveN(ctx, t, q, 1, 5*time.Second)[0]
	if string(back.Body) != "extended" {
		t.Fatalf("received %q, want %q", back.Body, "extended")
	}
}

func testDeadLetterAfterMaxReceives(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, dlq := h.MakeQueue(ctx, t, Options{Visibility: time.Second, MaxReceives: 2})
	if dlq == nil {
		t.Fatal("harness returned no dead-letter queue for MaxReceives 2")
	}
	mustSend(ctx, t, q, "poison")
	mustSend(ctx, t, q, "fine")
	var fine queue.Message
	for range 2 {
		for _, m := range receiveN(ctx, t, q, 2, 10*time.Second) {
			if string(m.Body) == "fine" {
				fine = m
			}
		}
	}
	// "fine" is still ours to finish: deleting it must keep working.
	if err := q.Delete(ctx, fine.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	expectNone(ctx, t, q, 2*time.Second)
	dead := receiveN(ctx, t, dlq, 1, 10*time.Second)[0]
	if string(dead.Body) != "poison" {
		t.Fatalf("dead-letter queue holds %q, want %q", dead.Body, "poison")
	}
}

func testDepth(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	q, _ := h.MakeQueue(ctx, t, Options{Visibility: 30 * time.Second})
	for i := range 3 {
		mustSend(ctx, t, q, fmt.Sprintf("d%d", i))
	}
	waitDepth(ctx, t, q, queue.Depth{Visible: 3})
	m := receiveN(ctx, t, q, 1, 10*time.Second)[0]
	waitDepth(ctx, t, q, queue.Depth{Visible: 2, InFlight: 1})
	if err := q.Delete(ctx, m.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitDepth(ctx, t, q, queue.Depth{Visible: 2})
}

// waitDepth allows the lag the Depth contract permits.
func waitDepth(ctx context.Context, t *testing.T, q queue.Queue, want queue.Depth) {
	t.Helper()
	var got queue.Depth
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if got, err = q.Depth(ctx); err != nil {
			t.Fatalf("Depth: %v", err)
		}
		if got == want {
			return
		}
	}
	t.Fatalf("Depth = %+v, want %+v", got, want)
}
