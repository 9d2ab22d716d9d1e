package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// consumerReport describes, from each NATS node's monitoring endpoint
// (/jsz), the consumers with work outstanding: which node leads each, how
// many messages wait (pending), are delivered but not acknowledged (ack
// pending) or were redelivered. It is printed when acknowledged events
// are still missing at the end of a drain, to tell a stalled consumer
// from a slow one.
func (t *Topology) consumerReport(ctx context.Context) string {
	client := &http.Client{Timeout: 2 * time.Second}
	var b strings.Builder
	for _, p := range t.NATS {
		u := strings.TrimSuffix(p.ready, "/healthz") + "/jsz?accounts=true&streams=true&consumers=true"
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(&b, "  %s: %v\n", p.name, err)
			continue
		}
		var jsz struct {
			Server   string `json:"server_name"`
			Accounts []struct {
				Streams []struct {
					Name    string `json:"name"`
					Cluster struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
					State struct {
						Msgs    uint64 `json:"messages"`
						LastSeq uint64 `json:"last_seq"`
					} `json:"state"`
					Consumers []struct {
						Name    string `json:"name"`
						Cluster struct {
							Leader string `json:"leader"`
						} `json:"cluster"`
						Pending     uint64 `json:"num_pending"`
						AckPending  int    `json:"num_ack_pending"`
						Redelivered int    `json:"num_redelivered"`
						Waiting     int    `json:"num_waiting"`
						Delivered   struct {
							Stream uint64 `json:"stream_seq"`
						} `json:"delivered"`
						AckFloor struct {
							Stream uint64 `json:"stream_seq"`
						} `json:"ack_floor"`
					} `json:"consumer_detail"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			fmt.Fprintf(&b, "  %s: /jsz: %v\n", p.name, err)
			continue
		}
		for _, a := range jsz.Accounts {
			for _, s := range a.Streams {
				for _, c := range s.Consumers {
					if c.Pending == 0 && c.AckPending == 0 {
						continue
					}
					fmt.Fprintf(&b, "  %s sees %s/%s (stream leader %s, last seq %d; consumer leader %s): pending %d, ack pending %d, redelivered %d, waiting pulls %d, delivered to seq %d, ack floor %d\n",
						p.name, s.Name, c.Name, s.Cluster.Leader, s.State.LastSeq, c.Cluster.Leader, c.Pending, c.AckPending, c.Redelivered, c.Waiting, c.Delivered.Stream, c.AckFloor.Stream)
				}
			}
		}
	}
	if b.Len() == 0 {
		return "  no consumer has work outstanding\n"
	}
	return b.String()
}
