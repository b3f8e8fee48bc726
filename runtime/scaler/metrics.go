package scaler

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-ml/nimbus/runtime/fleet"
	"github.com/nimbus-ml/nimbus/runtime/queue"
)

// Collector exports what the scaler looks at, read when Prometheus scrapes:
// nimbus_queue_messages{queue,state} and nimbus_workers{state}. Any process
// that can see the queues and the fleet may register one; the web tier does,
// so its /metrics shows the backlog even when the scaler runs elsewhere.
type Collector struct {
	// Queues maps a label ("input", "dead_letter") to a queue; nil entries
	// are skipped.
	Queues map[string]queue.Queue
	// Fleet, if set, is reported as workers desired, running and pending.
	Fleet fleet.Fleet
	// Timeout bounds one scrape's reads (default 5s).
	Timeout time.Duration
}

var (
	queueDesc = prometheus.NewDesc("nimbus_queue_messages",
		"Approximate messages by queue and state (visible, in_flight).", []string{"queue", "state"}, nil)
	workersDesc = prometheus.NewDesc("nimbus_workers",
		"Workers by state (desired, running, pending).", []string{"state"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- workersDesc
}

// Collect implements prometheus.Collector. A read that fails leaves its
// series out of the scrape rather than reporting a wrong zero.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for name, q := range c.Queues {
		if q == nil {
			continue
		}
		d, err := q.Depth(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(queueDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(d.Visible), name, "visible")
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(d.InFlight), name, "in_flight")
	}
	if c.Fleet == nil {
		return
	}
	s, err := c.Fleet.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(workersDesc, err)
		return
	}
	for state, v := range map[string]int{"desired": s.Desired, "running": s.Running, "pending": s.Pending} {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(v), state)
	}
}
