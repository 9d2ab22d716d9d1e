package push

import "github.com/prometheus/client_golang/prometheus"

// metrics are the push server's Prometheus metrics.
type metrics struct {
	connects      *prometheus.CounterVec
	refused       prometheus.Counter
	published     *prometheus.CounterVec
	publishErrors *prometheus.CounterVec
	delivered     prometheus.Counter
	gaps          prometheus.Counter
	slow          prometheus.Counter
	// tooLarge counts messages not sent to a frameBytes= subscriber for
	// being larger than its frames (a history_gap notice went instead).
	tooLarge prometheus.Counter
	// renewalRedirects counts subscribers of a renewed channel sent its
	// remembered channel_expire.
	renewalRedirects prometheus.Counter
	// replayMsgs and replayBytes count what history replays read from
	// JetStream; capped is the number of replays cut by a limit.
	replayMsgs, replayBytes, replayCapped prometheus.Counter
	// limited counts subscribe requests refused by a connection cap.
	limited *prometheus.CounterVec
	reg     prometheus.Registerer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isobox_push_subscribes_total", Help: "Accepted subscribe requests, by transport.",
		}, []string{"transport"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_subscribes_refused_total", Help: "Subscribe requests refused for a missing, malformed or badly signed CHANNEL_ID.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isobox_push_messages_published_total", Help: "Messages stored, by publish format.",
		}, []string{"format"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isobox_push_publish_refused_total", Help: "Publish requests refused, by reason.",
		}, []string{"reason"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_messages_delivered_total", Help: "Messages written to subscribers.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_history_gaps_total", Help: "Reconnects whose mid was older than the stored history (history_gap sent).",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_slow_disconnects_total", Help: "WebSocket subscribers disconnected for falling behind.",
		}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_messages_too_large_total", Help: "Messages not sent to a WebSocket subscriber because they are larger than the frameBytes= it asked for (it got a history_gap notice, reason message_too_large, instead).",
		}),
		renewalRedirects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_renewal_redirects_total", Help: "Subscribers of a renewed channel sent its remembered pull/channel_expire.",
		}),
		replayMsgs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_replay_read_messages_total", Help: "Messages read from the history stream to answer reconnects.",
		}),
		replayBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_replay_read_bytes_total", Help: "Body bytes read from the history stream to answer reconnects.",
		}),
		replayCapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isobox_push_replay_capped_total", Help: "Reconnects whose replay was cut to the newest messages by --push-replay-max-messages or --push-replay-max-bytes (history_gap sent).",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isobox_push_subscribes_limited_total", Help: "Subscribe requests refused by a connection cap, by cap (ip, channel).",
		}, []string{"cap"}),
		reg: reg,
	}
	return m
}

// bind registers the metrics, with gauges read from h.
func (m *metrics) bind(h *hub) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(m.connects, m.refused, m.published, m.publishErrors, m.delivered, m.gaps, m.slow, m.tooLarge, m.renewalRedirects,
		m.replayMsgs, m.replayBytes, m.replayCapped, m.limited,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "isobox_push_websockets", Help: "Open WebSocket subscribers on this instance.",
		}, func() float64 { return float64(h.ws.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "isobox_push_polls", Help: "Held long polls on this instance.",
		}, func() float64 { return float64(h.polls.Load()) }),
	)
}
