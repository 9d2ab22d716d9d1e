package delivery

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isobox/isobox/internal/events"
)

// gauges reports each handler's state at scrape time: queue depth, dead
// letters, circuit and pause. Counters say what happened; these say what
// is wrong now, so that a handler that is completely down (nothing
// delivered, so no lag observed) still shows, as a growing queue and an
// open circuit.
type gauges struct {
	s                                          *Service
	info, depth, dead, deadTotal, open, paused *prometheus.Desc
}

// scrapeTimeout bounds the broker reads one scrape makes.
const scrapeTimeout = 5 * time.Second

func newGauges(s *Service) *gauges {
	h := []string{"handler"}
	return &gauges{s: s,
		info: prometheus.NewDesc("isobox_relay_handler_info", "One per known handler (1): its URL, app and portal, to join with the other handler series.",
			[]string{"handler", "url", "client_id", "portal"}, nil),
		depth:     prometheus.NewDesc("isobox_relay_queue_depth", "Queue messages of a handler not yet settled (waiting, in flight or waiting for a retry).", h, nil),
		dead:      prometheus.NewDesc("isobox_relay_handler_dead_letters", "Dead letters of a handler waiting for a replay.", h, nil),
		deadTotal: prometheus.NewDesc("isobox_relay_dead_letters", "Dead letters in the dead-letter stream (all handlers).", nil, nil),
		open:      prometheus.NewDesc("isobox_relay_handler_circuit_open", "1 while a handler's circuit is open or half-open (no deliveries but a probe), 0 when closed.", h, nil),
		paused:    prometheus.NewDesc("isobox_relay_handler_paused", "1 while a handler is paused by an administrator.", h, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.info, g.depth, g.dead, g.deadTotal, g.open, g.paused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A broker read that fails leaves
// out the series it would have given (a scrape never reports a guess).
func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	dead, total, ok := g.s.deadCountsOK(ctx)
	if ok {
		ch <- prometheus.MustNewConstMetric(g.deadTotal, prometheus.GaugeValue, float64(total))
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, w := range g.s.workers() {
		h := w.info()
		ch <- prometheus.MustNewConstMetric(g.info, prometheus.GaugeValue, 1, h.Key, h.URL, h.ClientID, h.Portal)
		ch <- prometheus.MustNewConstMetric(g.paused, prometheus.GaugeValue, b(h.Paused), h.Key)
		ch <- prometheus.MustNewConstMetric(g.open, prometheus.GaugeValue, b(w.breakerState() != BreakerClosed), h.Key)
		if ok {
			ch <- prometheus.MustNewConstMetric(g.dead, prometheus.GaugeValue, float64(dead[events.SubjectDead+h.Key]), h.Key)
		}
		if ci, err := w.cons.Info(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(g.depth, prometheus.GaugeValue, float64(ci.NumPending+uint64(ci.NumAckPending)), h.Key)
		}
	}
}
