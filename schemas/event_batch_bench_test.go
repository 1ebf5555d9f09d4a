package schemas

import (
	"fmt"
	"testing"
)

// BenchmarkEventBuilderAppend measures the Arrow half of the consumer's
// per-event hot path: appending one decoded event to the batch being built
// (a batch is cut every 5,000 events, the consumer's default). One op is one
// event; allocs/op is allocations per event, amortised over the batch (the
// builder's buffers grow by doubling, then are handed to the record).
func BenchmarkEventBuilderAppend(b *testing.B) {
	const n, batch = 1024, 5000
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{
			EventID:   fmt.Appendf(nil, "evt-%08d", i),
			UserID:    fmt.Appendf(nil, "user-%06d", i%5000),
			ItemID:    fmt.Appendf(nil, "item-%05d", i%20000),
			Type:      uint8(i % 5),
			TsMs:      1_750_000_000_000 + int64(i),
			SessionID: fmt.Appendf(nil, "sess-%04d", i%300),
			Price:     float64(i%50) + 0.99,
			HasPrice:  i%3 != 0,
			Category:  fmt.Appendf(nil, "cat-%d", i%20),
		}
	}
	bld := NewEventBuilder(nil)
	defer bld.Release()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bld.Append(&evs[i%n], 0, int64(i), 1_750_000_000_000+int64(i))
		i++
		if bld.Len() == batch {
			bld.NewRecord().Release()
		}
	}
}
