package pipeline

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestLatencyHistogramCumulative(t *testing.T) {
	h := NewLatencyHistogram()
	for _, d := range []time.Duration{0, 500 * time.Microsecond, 4 * time.Millisecond, 5 * time.Millisecond,
		9*time.Millisecond + 900*time.Microsecond, 250 * time.Millisecond, 2 * time.Minute} {
		h.Record(d)
	}
	bounds := []time.Duration{time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, time.Second, time.Hour}
	// A sample counts below a bound only when its whole millisecond bucket
	// lies below it: 5 ms sits in the bucket [5 ms, 6 ms), so it counts
	// from the 10 ms bound on, not at 5 ms.
	want := []uint64{2, 3, 5, 6, 6}
	if got := h.Cumulative(bounds); !slices.Equal(got, want) {
		t.Errorf("Cumulative = %v, want %v", got, want)
	}
	if h.Count() != 7 {
		t.Errorf("Count = %d, want 7 (the sample past a minute included)", h.Count())
	}
	wantSum := 500*time.Microsecond + 4*time.Millisecond + 5*time.Millisecond + 9*time.Millisecond + 900*time.Microsecond +
		250*time.Millisecond + 2*time.Minute
	if h.Sum() != wantSum {
		t.Errorf("Sum = %s, want %s", h.Sum(), wantSum)
	}
}

func TestOutagesTrackRetriesPerSink(t *testing.T) {
	s := newStats([]string{"clickhouse", "kafka"})
	t0 := time.Unix(1000, 0)
	s.outages.failed("clickhouse", errors.New("connection refused"), t0)
	s.outages.failed("clickhouse", errors.New("connection reset"), t0.Add(time.Second))
	s.outages.failed("kafka", errors.New("leader not available"), t0.Add(2*time.Second))
	out := s.Outages()
	if o := out["clickhouse"]; o.Attempts != 2 || !o.Since.Equal(t0) || o.LastError != "connection reset" {
		t.Errorf("clickhouse outage = %+v", o)
	}
	s.outages.ended("kafka")
	if _, ok := s.Outages()["kafka"]; ok {
		t.Error("kafka still reported unavailable after it took the batch")
	}
	s.outages.ended("clickhouse")
	if len(s.Outages()) != 0 {
		t.Errorf("outages left: %v", s.Outages())
	}
	// Errors are counted for good.
	if e := s.SinkErrors(); e["clickhouse"] != 2 || e["kafka"] != 1 {
		t.Errorf("SinkErrors = %v", e)
	}
	// The copy is the caller's.
	out["clickhouse"] = SinkOutage{}
	s.outages.failed("clickhouse", errors.New("x"), t0)
	if s.Outages()["clickhouse"].Attempts != 1 {
		t.Error("a new outage does not start from its first failure")
	}
}
