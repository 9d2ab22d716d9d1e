package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type metrics struct {
	delivered, retried, dead, duplicates prometheus.Counter
	attempts                             *prometheus.CounterVec
	latency                              *prometheus.HistogramVec
	e2e                                  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		delivered:  prometheus.NewCounter(prometheus.CounterOpts{Name: "isobox_relay_delivered_total", Help: "Events delivered (a 2xx answer)."}),
		retried:    prometheus.NewCounter(prometheus.CounterOpts{Name: "isobox_relay_retried_total", Help: "Failed attempts scheduled for a retry."}),
		dead:       prometheus.NewCounter(prometheus.CounterOpts{Name: "isobox_relay_dead_lettered_total", Help: "Events moved to the dead letters."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "isobox_relay_duplicates_total", Help: "Items handed off again within the dedup window and queued once."}),
		attempts:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "isobox_relay_attempts_total", Help: "Delivery attempts by handler and outcome."}, []string{"handler", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "isobox_relay_attempt_seconds", Help: "Handler response time per attempt.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2, 3, 5, 10}}, []string{"handler"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "isobox_relay_delivery_lag_seconds", Help: "Time from ingest to successful delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.retried, m.dead, m.duplicates, m.attempts, m.latency, m.e2e)
	}
	return m
}

func (m *metrics) attempt(handler string, r result) {
	outcome := "fail"
	if r.ok {
		outcome = "ok"
	}
	m.attempts.WithLabelValues(handler, outcome).Inc()
	if r.took > 0 {
		m.latency.WithLabelValues(handler).Observe(r.took.Seconds())
	}
}

// quantiles estimates the q-quantiles of handler's attempt times in
// seconds from the histogram's buckets (linear within a bucket, as
// Prometheus' histogram_quantile); zeros before the first observation.
func (m *metrics) quantiles(handler string, qs ...float64) []float64 {
	out := make([]float64, len(qs))
	h, err := m.latency.GetMetricWithLabelValues(handler)
	if err != nil {
		return out
	}
	var d dto.Metric
	if h.(prometheus.Histogram).Write(&d) != nil {
		return out
	}
	total := float64(d.GetHistogram().GetSampleCount())
	if total == 0 {
		return out
	}
	buckets := d.GetHistogram().GetBucket()
	for i, q := range qs {
		rank := q * total
		lower, below := 0.0, 0.0
		out[i] = buckets[len(buckets)-1].GetUpperBound() // past the last bucket: its bound
		for _, b := range buckets {
			n := float64(b.GetCumulativeCount())
			if n >= rank {
				upper := b.GetUpperBound()
				if n > below {
					out[i] = lower + (upper-lower)*(rank-below)/(n-below)
				} else {
					out[i] = upper
				}
				break
			}
			lower, below = b.GetUpperBound(), n
		}
	}
	return out
}
