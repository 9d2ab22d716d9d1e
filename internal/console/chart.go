package console

import (
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
)

// sample is the relay's counters at one time.
type sample struct {
	at                                         time.Time
	ingested, delivered, retried, dead, queued int64
	deadNow                                    int64
}

// sampler keeps the last n samples for the overview's charts.
type sampler struct {
	mu  sync.Mutex
	n   int
	buf []sample
}

func newSampler(n int) *sampler { return &sampler{n: n} }

func (s *sampler) add(at time.Time, st *relayv1.StatsResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, sample{at: at, ingested: st.Ingested, delivered: st.Delivered, retried: st.Retried,
		dead: st.DeadLettered, queued: st.Pending, deadNow: st.Dead})
	if len(s.buf) > s.n {
		s.buf = append([]sample(nil), s.buf[len(s.buf)-s.n:]...)
	}
}

func (s *sampler) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.buf...)
}

// Series is one line of a chart.
type Series struct {
	Name   string
	Class  string // CSS class: its colour
	Points []float64
}

// Chart is what chartSVG draws: series over the same times.
type Chart struct {
	Title  string
	Unit   string
	Series []Series
	From   time.Time
	To     time.Time
}

// rates turns counter samples into per-second rates between samples.
func rates(ss []sample, get func(sample) int64) []float64 {
	var out []float64
	for i := 1; i < len(ss); i++ {
		dt := ss[i].at.Sub(ss[i-1].at).Seconds()
		d := get(ss[i]) - get(ss[i-1])
		if dt <= 0 || d < 0 { // a relay restart resets its counters
			d = 0
		}
		out = append(out, float64(d)/max(dt, 1e-9))
	}
	return out
}

func levels(ss []sample, get func(sample) int64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = float64(get(s))
	}
	return out
}

const (
	chartW, chartH = 640, 180
	padL, padB     = 44, 20
)

// chartSVG draws c as an inline SVG: axes, three grid lines with values,
// one polyline per series. Everything in it is numbers or escaped text.
func chartSVG(c Chart) template.HTML {
	var b strings.Builder
	top := 0.0
	n := 0
	for _, s := range c.Series {
		for _, v := range s.Points {
			top = max(top, v)
		}
		n = max(n, len(s.Points))
	}
	top = niceCeil(top)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s">`, chartW, chartH, template.HTMLEscapeString(c.Title))
	plotW, plotH := float64(chartW-padL-8), float64(chartH-padB-8)
	for i := 0; i <= 3; i++ {
		y := 8 + plotH - plotH*float64(i)/3
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y, chartW-8, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, template.HTMLEscapeString(short(top*float64(i)/3)))
	}
	if !c.From.IsZero() {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text>`, padL, chartH-4, c.From.Format("15:04"))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-8, chartH-4, c.To.Format("15:04"))
	}
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		var pts strings.Builder
		for i, v := range s.Points {
			x := float64(padL)
			if n > 1 {
				x += plotW * float64(i+n-len(s.Points)) / float64(n-1)
			}
			y := 8 + plotH
			if top > 0 {
				y -= plotH * v / top
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintf(&b, `<polyline class="line %s" points="%s"/>`, template.HTMLEscapeString(s.Class), strings.TrimSpace(pts.String()))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// sparkSVG is a small chart without axes for a stat card.
func sparkSVG(points []float64) template.HTML {
	if len(points) < 2 {
		return ""
	}
	top := 0.0
	for _, v := range points {
		top = max(top, v)
	}
	var pts strings.Builder
	for i, v := range points {
		y := 28.0
		if top > 0 {
			y -= 26 * v / top
		}
		fmt.Fprintf(&pts, "%.1f,%.1f ", 120*float64(i)/float64(len(points)-1), y)
	}
	return template.HTML(`<svg class="spark" viewBox="0 0 120 30" preserveAspectRatio="none"><polyline points="` + strings.TrimSpace(pts.String()) + `"/></svg>`)
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	m := 1.0
	for m*10 <= v {
		m *= 10
	}
	for m > v*10 {
		m /= 10
	}
	for _, f := range []float64{1, 1.5, 2, 3, 5, 10} {
		if f*m >= v {
			return f * m
		}
	}
	return 10 * m
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
