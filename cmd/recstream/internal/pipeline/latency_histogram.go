package pipeline

import "time"

// LatencyHistogram records durations in 1 ms buckets up to a minute, plus an
// overflow bucket, so that quantiles are exact to the millisecond at a fixed
// memory cost whatever the number of samples. Not safe for concurrent use.
type LatencyHistogram struct {
	buckets [60_000]uint64
	over    uint64
	count   uint64
	max     time.Duration
	sum     time.Duration
}

// NewLatencyHistogram returns an empty histogram.
func NewLatencyHistogram() *LatencyHistogram { return &LatencyHistogram{} }

// Record adds one sample; negative samples (clock skew) count as zero.
func (h *LatencyHistogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	ms := d / time.Millisecond
	if ms < time.Duration(len(h.buckets)) {
		h.buckets[ms]++
	} else {
		h.over++
	}
	h.count++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

// Count is the number of samples.
func (h *LatencyHistogram) Count() uint64 { return h.count }

// Max is the largest sample.
func (h *LatencyHistogram) Max() time.Duration { return h.max }

// Sum is the total of the samples.
func (h *LatencyHistogram) Sum() time.Duration { return h.sum }

// Cumulative returns, for each of bounds (ascending), how many samples
// were shorter than that bound's whole milliseconds (the histogram's
// resolution): a sample is known to be at most a bound when its whole
// bucket is below it. Samples of a minute or more are counted by Count
// alone.
func (h *LatencyHistogram) Cumulative(bounds []time.Duration) []uint64 {
	out := make([]uint64, len(bounds))
	var seen uint64
	next := 0 // the next bucket to add
	for i, b := range bounds {
		end := min(int(b/time.Millisecond), len(h.buckets)) // buckets [0, end) lie below b
		for ; next < end; next++ {
			seen += h.buckets[next]
		}
		out[i] = seen
	}
	return out
}

// Quantile returns an upper bound of quantile q (0..1): the end of the
// bucket holding it, or the largest sample when that is smaller (so that a
// quantile never reads above the maximum); 0 when empty.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := uint64(q*float64(h.count-1)) + 1
	var seen uint64
	for i, c := range h.buckets {
		seen += c
		if seen >= rank {
			return min(time.Duration(i+1)*time.Millisecond, h.max)
		}
	}
	return h.max
}
