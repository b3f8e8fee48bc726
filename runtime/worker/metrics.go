package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-ml/nimbus/runtime/classify"
)

// Metrics are the worker's Prometheus instruments. A nil *Metrics records
// nothing.
type Metrics struct {
	preprocess prometheus.Histogram
	inference  prometheus.Histogram
	failures   *prometheus.CounterVec
}

// NewMetrics registers the worker's instruments with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.001, 2, 14)
	m := &Metrics{
		preprocess: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nimbus_preprocess_seconds", Help: "Decoding, resizing and normalising one image.", Buckets: buckets,
		}),
		inference: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nimbus_inference_seconds", Help: "One forward pass of the model.", Buckets: buckets,
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_job_failures_total", Help: "Jobs that failed, by reason: bad_image, missing_image and dead_letter are final, retry is retried.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.preprocess, m.inference, m.failures)
	return m
}

func (m *Metrics) observe(c classify.Classification) {
	if m == nil {
		return
	}
	m.preprocess.Observe(c.Preprocess.Seconds())
	m.inference.Observe(c.Inference.Seconds())
}

func (m *Metrics) failure(reason string) {
	if m == nil {
		return
	}
	m.failures.WithLabelValues(reason).Inc()
}
