package consumers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/recstream/recstream/schemas"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testEvent returns a valid event value for user u, event i.
func testEvent(u, i int) []byte {
	return fmt.Appendf(nil, `{"event_id":"e-%06d","user_id":"u-%d","item_id":"i-%06d","type":"view","ts":%d}`,
		i, u, i%100, t0.UnixMilli()-int64(i))
}

func TestBatchConfig(t *testing.T) {
	d := BatchConfig{}.WithDefaults()
	if d.MaxRows != 5000 || d.MaxBytes != 4<<20 || d.Linger != 50*time.Millisecond {
		t.Errorf("defaults = %+v", d)
	}
	tests := []struct {
		cfg  BatchConfig
		want string
	}{
		{BatchConfig{}, ""},
		{BatchConfig{MaxRows: -1}, "max_rows: must be > 0 (0 means 5000), got -1"},
		{BatchConfig{MaxBytes: -5}, "max_bytes: must be > 0"},
		{BatchConfig{Linger: -time.Millisecond}, "linger: must be > 0"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// feed decodes and adds values to b as the consumer does, flushing when a
// record does not fit or the batch is full, and returns the batches cut.
func feed(t *testing.T, b *Batcher, partition int32, firstOffset int64, values [][]byte) []*schemas.EventBatch {
	t.Helper()
	dec := schemas.NewEventDecoder(schemas.EventLimits{})
	var out []*schemas.EventBatch
	var ev schemas.Event
	for i, v := range values {
		rec := Record{Partition: partition, Offset: firstOffset + int64(i), Key: nil, Value: v, Time: t0, Fetched: t0.Add(time.Duration(i) * time.Millisecond)}
		if !b.Fits(len(v)) {
			out = append(out, b.Flush())
		}
		if derr := dec.Decode(rec.Key, rec.Value, rec.Time, &ev); derr != nil {
			b.AddDeadLetter(&rec, derr.Reason, derr.Detail)
		} else {
			b.AddEvent(&rec, &ev)
		}
		if b.Full() {
			out = append(out, b.Flush())
		}
	}
	return out
}

func TestBatcherBounds(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	values := make([][]byte, 25)
	for i := range values {
		values[i] = testEvent(i%3, i)
	}
	size := len(values[0]) // every value here has the same length up to a few bytes
	tests := []struct {
		name      string
		cfg       BatchConfig
		wantSizes []int // records per batch cut; the remainder stays in the batcher
		rest      int
	}{
		{"rows", BatchConfig{MaxRows: 10}, []int{10, 10}, 5},
		{"bytes", BatchConfig{MaxBytes: 4*size + 2}, []int{4, 4, 4, 4, 4, 4}, 1},
		{"one record over max bytes", BatchConfig{MaxBytes: 1}, ones(25), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBatcher("in", tt.cfg, mem)
			defer b.Release()
			batches := feed(t, b, 3, 100, values)
			var sizes []int
			next := int64(100)
			for _, batch := range batches {
				sizes = append(sizes, batch.Records)
				if batch.Records != int(batch.Events.NumRows())+len(batch.DeadLetters) {
					t.Errorf("Records %d != rows %d + dead letters %d", batch.Records, batch.Events.NumRows(), len(batch.DeadLetters))
				}
				if tt.cfg.MaxBytes > 1 && batch.Bytes > tt.cfg.MaxBytes {
					t.Errorf("batch of %d bytes, max %d", batch.Bytes, tt.cfg.MaxBytes)
				}
				next += int64(batch.Records)
				if len(batch.Commit) != 1 || batch.Commit[0] != (schemas.PartitionOffset{Partition: 3, Offset: next}) {
					t.Errorf("Commit = %v, want partition 3 offset %d", batch.Commit, next)
				}
				rows := schemas.Rows(batch.Events)
				if got := rows.Offset.Value(0); got != next-int64(batch.Records) {
					t.Errorf("first offset %d, want %d", got, next-int64(batch.Records))
				}
				batch.Release()
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.wantSizes) || b.Records() != tt.rest {
				t.Errorf("batches %v + %d left, want %v + %d", sizes, b.Records(), tt.wantSizes, tt.rest)
			}
		})
	}
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

func TestBatcherLingerDeadlineAndCommit(t *testing.T) {
	b := NewBatcher("in", BatchConfig{Linger: 80 * time.Millisecond}, nil)
	defer b.Release()
	if _, ok := b.Deadline(); ok || b.Flush() != nil {
		t.Fatal("an empty batcher has a deadline or a batch")
	}
	dec := schemas.NewEventDecoder(schemas.EventLimits{})
	var ev schemas.Event
	add := func(p int32, off int64, fetched time.Time) {
		v := testEvent(int(p), int(off))
		if derr := dec.Decode(nil, v, t0, &ev); derr != nil {
			t.Fatal(derr)
		}
		b.AddEvent(&Record{Partition: p, Offset: off, Value: v, Time: t0, Fetched: fetched}, &ev)
	}
	before := time.Now()
	add(2, 7, t0)
	after := time.Now()
	add(0, 3, t0.Add(time.Second))
	add(2, 8, t0.Add(time.Second))
	add(0, 4, t0.Add(time.Second))
	add(1, 0, t0.Add(time.Second))
	// The linger runs from when the batch got its first record, not from
	// when that record was fetched: a record held back by back-pressure
	// must not start a batch whose linger is already over.
	if d, ok := b.Deadline(); !ok || d.Before(before.Add(80*time.Millisecond)) || d.After(after.Add(80*time.Millisecond)) {
		t.Errorf("Deadline = %v %v, want the first add + linger (80ms)", d, ok)
	}
	batch := b.Flush()
	defer batch.Release()
	want := []schemas.PartitionOffset{{Partition: 0, Offset: 5}, {Partition: 1, Offset: 1}, {Partition: 2, Offset: 9}}
	if fmt.Sprint(batch.Commit) != fmt.Sprint(want) {
		t.Errorf("Commit = %v, want %v", batch.Commit, want)
	}
	if !batch.FirstFetched.Equal(t0) || batch.Records != 5 || batch.Topic != "in" {
		t.Errorf("batch = %+v", batch)
	}
	rows := schemas.Rows(batch.Events)
	if rows.UserID.Value(0) != "u-2" || rows.Partition.Value(1) != 0 || rows.LogTs.Value(0) != 1748779200000 {
		t.Errorf("row 0/1 = %s %d %d", rows.UserID.Value(0), rows.Partition.Value(1), rows.LogTs.Value(0))
	}
}

func TestBatcherDeadLettersCopyBytes(t *testing.T) {
	b := NewBatcher("in", BatchConfig{}, nil)
	defer b.Release()
	key, value := []byte("k-1"), []byte(`{"not":"an event"}`)
	b.AddDeadLetter(&Record{Partition: 1, Offset: 9, Key: key, Value: value, Time: t0}, schemas.ReasonMissingField, "event_id: required")
	copy(key, "XXX")
	copy(value, "XXXXXXXXXXXXXXXXXX")
	batch := b.Flush()
	defer batch.Release()
	dl := batch.DeadLetters[0]
	if string(dl.Key) != "k-1" || string(dl.Value) != `{"not":"an event"}` {
		t.Fatalf("dead letter shares the fetch buffer: key %q value %q", dl.Key, dl.Value)
	}
	if dl.Partition != 1 || dl.Offset != 9 || !dl.Time.Equal(t0) || dl.Reason != schemas.ReasonMissingField || batch.Events.NumRows() != 0 {
		t.Errorf("dead letter = %+v, rows %d", dl, batch.Events.NumRows())
	}
}

func TestBatcherResetDropsPartial(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBatcher("in", BatchConfig{}, mem)
	feed(t, b, 0, 0, [][]byte{testEvent(1, 1), testEvent(1, 2)})
	b.Reset()
	if b.Records() != 0 || b.Flush() != nil {
		t.Fatal("Reset kept records")
	}
	batches := feed(t, b, 0, 2, [][]byte{testEvent(1, 3)})
	if len(batches) != 0 {
		t.Fatal("unexpected cut")
	}
	batch := b.Flush()
	if batch.Records != 1 || batch.Commit[0].Offset != 3 || batch.Events.NumRows() != 1 {
		t.Errorf("after Reset: %+v", batch)
	}
	batch.Release()
	b.Release()
}

// BenchmarkDecodeAndAppend measures the per-event hot path of the consumer:
// decode and validate one event, append it to the Arrow batch, cut a batch
// every MaxRows events.
func BenchmarkDecodeAndAppend(b *testing.B) {
	const n = 1024
	values := make([][]byte, n)
	keys := make([][]byte, n)
	for i := range values {
		values[i] = fmt.Appendf(nil, `{"event_id":"evt-%08d","user_id":"user-%06d","item_id":"item-%05d","type":"click",`+
			`"ts":"2025-06-01T11:59:%02d.%03dZ","session_id":"sess-%04d","price":%d.99,"category":"cat-%d"}`,
			i, i%5000, i%20000, i%60, i%1000, i%300, i%50, i%20)
		keys[i] = fmt.Appendf(nil, "user-%06d", i%5000)
	}
	dec := schemas.NewEventDecoder(schemas.EventLimits{})
	bat := NewBatcher("in", BatchConfig{}, nil)
	defer bat.Release()
	var ev schemas.Event
	var bytes int64
	for _, v := range values {
		bytes += int64(len(v))
	}
	b.SetBytes(bytes / n)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % n
		rec := Record{Partition: 0, Offset: int64(i), Key: keys[k], Value: values[k], Time: t0, Fetched: t0}
		if derr := dec.Decode(rec.Key, rec.Value, rec.Time, &ev); derr != nil {
			b.Fatal(derr)
		}
		if !bat.Fits(len(rec.Key) + len(rec.Value)) {
			bat.Flush().Release()
		}
		bat.AddEvent(&rec, &ev)
		i++
	}
}
