package memqueue_test

import (
	"context"
	"testing"

	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/queue/queuetest"
)

type harness struct{}

func (harness) MakeQueue(_ context.Context, _ *testing.T, opts queuetest.Options) (queue.Queue, queue.Queue) {
	if opts.MaxReceives == 0 {
		return memqueue.New(memqueue.Options{Visibility: opts.Visibility}), nil
	}
	dlq := memqueue.New(memqueue.Options{})
	q := memqueue.New(memqueue.Options{Visibility: opts.Visibility, DeadLetter: dlq, MaxReceives: opts.MaxReceives})
	return q, dlq
}

func (harness) Skip(string) string { return "" }

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.RunConformance(t, func(*testing.T) queuetest.Harness { return harness{} })
}
