package consumers

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/schemas"
)

// hostileRecord is an input record built to hurt: each must be dead-lettered
// with the given reason, never crash the consumer, and never make it hold
// more memory than its batch bounds allow.
type hostileRecord struct {
	name   string
	key    []byte
	value  []byte
	reason string
}

func hostileRecords() []hostileRecord {
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 600<<10)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	valid := `"event_id":"e-1","user_id":"u-1","item_id":"i-1","type":"view","ts":1748779200000`
	deepArrays := strings.Repeat("[", 6000) + strings.Repeat("]", 6000)
	deepObjects := strings.Repeat(`{"a":`, 2500) + "1" + strings.Repeat("}", 2500)
	return []hostileRecord{
		{"huge value", []byte("u-1"), []byte(`{` + valid + `,"pad":"` + strings.Repeat("x", 900<<10) + `"}`), schemas.ReasonOversize},
		{"huge binary value", nil, garbage, schemas.ReasonOversize},
		{"huge key", bytes.Repeat([]byte("k"), 800<<10), []byte(`{` + valid + `}`), schemas.ReasonKeyMismatch},
		{"huge key and value", bytes.Repeat([]byte("k"), 400<<10), bytes.Repeat([]byte("v"), 500<<10), schemas.ReasonOversize},
		{"deeply nested arrays", nil, []byte(`{"x":` + deepArrays + `,` + valid + `}`), schemas.ReasonMalformedJSON},
		{"deeply nested objects", nil, []byte(`{"x":` + deepObjects + `,` + valid + `}`), schemas.ReasonMalformedJSON},
		{"nesting as the root", nil, []byte(deepArrays), schemas.ReasonMalformedJSON},
		{"invalid UTF-8 in user_id", nil, []byte("{\"event_id\":\"e\",\"user_id\":\"u-\xff\xfe\",\"item_id\":\"i\",\"type\":\"view\",\"ts\":1748779200000}"), schemas.ReasonInvalidField},
		{"invalid UTF-8 in item_id", nil, []byte("{\"event_id\":\"e\",\"user_id\":\"u-1\",\"item_id\":\"\xc3\x28\",\"type\":\"view\",\"ts\":1748779200000}"), schemas.ReasonInvalidField},
		{"invalid UTF-8 outside strings", nil, []byte("{\xff\"event_id\":\"e\"}"), schemas.ReasonMalformedJSON},
		{"overlong UTF-8 in type", nil, []byte("{\"event_id\":\"e\",\"user_id\":\"u-1\",\"item_id\":\"i\",\"type\":\"\xc0\xafview\",\"ts\":1748779200000}"), schemas.ReasonInvalidField},
		{"id past its limit", nil, []byte(`{"event_id":"e","user_id":"` + strings.Repeat("u", 4000) + `","item_id":"i","type":"view","ts":1748779200000}`), schemas.ReasonOversize},
		{"field repeated", nil, []byte(`{` + valid + strings.Repeat(`,"type":"view"`, 800) + `}`), schemas.ReasonInvalidField},
		{"number past float64", nil, []byte(`{"event_id":"e","user_id":"u-1","item_id":"i","type":"view","ts":1e400}`), schemas.ReasonBadTimestamp},
		{"empty value", nil, []byte{}, schemas.ReasonMalformedJSON},
		{"NUL bytes", nil, bytes.Repeat([]byte{0}, 1000), schemas.ReasonMalformedJSON},
		{"string, not object", nil, []byte(`"` + strings.Repeat("s", 10000) + `"`), schemas.ReasonMalformedJSON},
		{"unterminated string", nil, []byte(`{"event_id":"` + strings.Repeat("e", 12000)), schemas.ReasonMalformedJSON},
	}
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHostileInputIsDeadLetteredWithBoundedMemory feeds the consumer records
// built to break it, interleaved with valid events, several rounds of each:
// every hostile record must come out as a dead letter with its reason (and
// reach the dead-letter topic, truncated when too large), every valid event
// as an event, and while the pipeline does not call Next the consumer must
// hold no more than its batch bounds, whatever the records' sizes.
func TestHostileInputIsDeadLetteredWithBoundedMemory(t *testing.T) {
	_, addrs := newCluster(t, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(inTopic), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const rounds = 4
	hostile := hostileRecords()
	type expect struct{ name, reason string }
	want := map[pos]expect{}
	var produced, producedBytes, validWant int
	// First a flood of huge keys on small values: far more than the bounds
	// allow in memory, so that only a consumer that counts keys in its
	// batch bounds stays under the limit below.
	hugeKey := bytes.Repeat([]byte("K"), 800<<10)
	for range 4 {
		var recs []*kgo.Record
		for i := range 25 {
			recs = append(recs, &kgo.Record{Partition: int32(i % 2), Key: hugeKey,
				Value: []byte(`{"event_id":"e","user_id":"u-1","item_id":"i","type":"view","ts":1748779200000}`)})
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce the flood: %v", err)
		}
		for _, r := range res {
			want[pos{int(r.Record.Partition), r.Record.Offset}] = expect{"flood of huge keys", schemas.ReasonKeyMismatch}
			producedBytes += len(r.Record.Key) + len(r.Record.Value)
		}
		produced += len(recs)
	}
	for round := range rounds {
		var recs []*kgo.Record
		bad := map[*kgo.Record]expect{}
		for i, h := range hostile {
			p := int32((round + i) % 2)
			r := &kgo.Record{Partition: p, Key: h.key, Value: h.value}
			bad[r] = expect{h.name, h.reason}
			value := fmt.Appendf(nil, `{"event_id":"ok-%d-%d","user_id":"u-%d","item_id":"i-%d","type":"view","ts":1748779200000}`, round, i, i, i)
			recs = append(recs, r, &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "u-%d", i), Value: value})
			producedBytes += len(h.key) + len(h.value)
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce round %d: %v", round, err)
		}
		for _, r := range res { // in completion order
			if e, ok := bad[r.Record]; ok {
				want[pos{int(r.Record.Partition), r.Record.Offset}] = e
			} else {
				validWant++
			}
		}
		produced += len(recs)
	}
	t.Logf("produced %d records, %d MiB of hostile keys and values", produced, producedBytes>>20)

	base := heapInUse()
	const maxBytes = 2 << 20
	const maxBuffered = 2
	c := newTestConsumer(t, ReaderConfig{Brokers: addrs, GroupID: "hostile", MaxBufferedBatches: maxBuffered,
		Batch: BatchConfig{MaxRows: 5000, MaxBytes: maxBytes, Linger: 20 * time.Millisecond}})

	// Back-pressure: no Next for a while. The fetchers fill the buffered
	// batches and the one being built, then wait; nothing else may grow.
	waitFor(ctx, t, func() bool { return c.Stats().BufferedBatches == maxBuffered })
	time.Sleep(500 * time.Millisecond)
	held := int64(heapInUse()) - int64(base)
	// Each batch holds at most maxBytes of keys and values (or one larger
	// record), kept once as dead-letter copies; the fetch in progress holds
	// one more record. Allow the decoder, the Arrow builders and the
	// client's buffers on top.
	limit := int64((maxBuffered+1)*(maxBytes+1<<20)) + 2<<20 + 24<<20
	t.Logf("held %d MiB under back-pressure (limit %d MiB, input %d MiB)", held>>20, limit>>20, producedBytes>>20)
	if held > limit {
		t.Errorf("consumer holds %d MiB while waiting, bound is %d MiB: a record size escapes the batch bounds", held>>20, limit>>20)
	}

	s := newSeen(t)
	nextN(ctx, t, c, s, produced, func(b *schemas.EventBatch) {
		if b.Bytes > maxBytes && b.Records > 1 {
			t.Errorf("batch of %d records holds %d bytes of keys and values, max_bytes %d", b.Records, b.Bytes, maxBytes)
		}
	})
	if s.valid != validWant {
		t.Errorf("valid events = %d, want %d", s.valid, validWant)
	}
	if len(s.dead) != len(want) {
		t.Errorf("dead letters = %d, want %d", len(s.dead), len(want))
	}
	for _, dl := range s.dead {
		e, ok := want[pos{dl.Partition, dl.Offset}]
		if !ok {
			t.Errorf("a valid event at %d/%d was dead-lettered: %s (%s)", dl.Partition, dl.Offset, dl.Reason, dl.Detail)
			continue
		}
		if dl.Reason != e.reason {
			t.Errorf("%s: reason %s (%s), want %s", e.name, dl.Reason, clip(dl.Detail), e.reason)
		}
		if len(dl.Detail) > 1024 {
			t.Errorf("%s: detail of %d bytes echoes the input", e.name, len(dl.Detail))
		}
	}
	// Writing them (truncated past 1 MiB) is the dead-letter sink's part:
	// sinks.TestDeadLetterOversize, and end to end TestBadInputLosesNothing.
}

func waitFor(ctx context.Context, t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met before the deadline")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
