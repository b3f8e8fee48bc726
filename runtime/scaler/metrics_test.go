package scaler_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nimbus-ml/nimbus/runtime/fleet"
	"github.com/nimbus-ml/nimbus/runtime/queue"
	"github.com/nimbus-ml/nimbus/runtime/queue/memqueue"
	"github.com/nimbus-ml/nimbus/runtime/scaler"
)

// staticFleet reports a fixed size.
type staticFleet struct{ status fleet.Status }

func (f staticFleet) Status(context.Context) (fleet.Status, error) { return f.status, nil }
func (staticFleet) Scale(context.Context, int) error               { return nil }

// brokenQueue answers nothing, like a queue whose service is down.
type brokenQueue struct{ queue.Queue }

func (brokenQueue) Depth(context.Context) (queue.Depth, error) {
	return queue.Depth{}, errors.New("unreachable")
}

func TestCollector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	input := memqueue.New(memqueue.Options{})
	for range 3 {
		input.Send(ctx, []byte("job"))
	}
	input.Receive(ctx, 1, 0)
	c := &scaler.Collector{
		Queues: map[string]queue.Queue{"input": input, "dead_letter": brokenQueue{}, "unset": nil},
		Fleet:  staticFleet{status: fleet.Status{Desired: 4, Running: 3, Pending: 1}},
	}
	want := `
# HELP nimbus_queue_messages Approximate messages by queue and state (visible, in_flight).
# TYPE nimbus_queue_messages gauge
nimbus_queue_messages{queue="input",state="in_flight"} 1
nimbus_queue_messages{queue="input",state="visible"} 2
# HELP nimbus_workers Workers by state (desired, running, pending).
# TYPE nimbus_workers gauge
nimbus_workers{state="desired"} 4
nimbus_workers{state="pending"} 1
nimbus_workers{state="running"} 3
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	err := testutil.GatherAndCompare(reg, strings.NewReader(want))
	// The broken queue is reported as a collection error, not as zeros.
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("gathering: %v; want the healthy series and an error naming the unreachable queue", err)
	}
	c.Queues["dead_letter"] = nil
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
