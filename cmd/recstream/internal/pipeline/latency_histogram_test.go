package pipeline

import (
	"testing"
	"time"
)

func TestLatencyHistogramQuantile(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"bucket end", []time.Duration{10 * ms, 20 * ms, 30 * ms, 40 * ms}, 0.5, 21 * ms},
		{"never above the maximum", []time.Duration{94*ms + 300*time.Microsecond, 94*ms + 300*time.Microsecond}, 0.99, 94*ms + 300*time.Microsecond},
		{"minimum", []time.Duration{3 * ms, 7 * ms}, 0, 4 * ms},
		{"over a minute", []time.Duration{time.Second, 2 * time.Minute, 2 * time.Minute}, 0.99, 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewLatencyHistogram()
			for _, d := range tc.samples {
				h.Record(d)
			}
			if got := h.Quantile(tc.q); got != tc.want {
				t.Errorf("Quantile(%g) = %s, want %s", tc.q, got, tc.want)
			}
			if got := h.Quantile(tc.q); got > h.Max() {
				t.Errorf("Quantile(%g) = %s above the maximum %s", tc.q, got, h.Max())
			}
		})
	}
}
