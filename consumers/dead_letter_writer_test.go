package consumers

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/schemas"
)

// TestDeadLetterRoundTrip consumes bad records, writes the batch's dead
// letters and reads them back: key and value byte-identical to what the
// producer wrote, reason and source position in headers.
func TestDeadLetterRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 2)
	p := newProducer(t, addrs)
	p.produce(400, 2, 4) // every 4th record is bad: 100 dead letters

	c := newTestConsumer(t, ReaderConfig{Brokers: addrs})
	s := newSeen(t)
	var dls []schemas.DeadLetter
	nextN(ctx, t, c, s, len(p.all), func(b *schemas.EventBatch) { dls = append(dls, b.DeadLetters...) })
	if len(dls) != 100 {
		t.Fatalf("%d dead letters, want 100", len(dls))
	}

	w := NewDeadLetterWriter(addrs, dlqTopic, nil, testLogger(t))
	defer w.Close()
	if err := w.Write(ctx, inTopic, dls); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := readTopic(ctx, t, addrs, dlqTopic, len(dls))
	if len(got) != len(dls) {
		t.Fatalf("read %d dead letters, wrote %d", len(got), len(dls))
	}
	for _, r := range got {
		h := headers(r)
		part, _ := strconv.Atoi(h[HeaderSourcePartition])
		off, _ := strconv.ParseInt(h[HeaderSourceOffset], 10, 64)
		orig, ok := p.all[pos{part, off}]
		if !ok || !orig.Bad {
			t.Fatalf("dead letter names %d/%d, which is not a bad record produced (headers %v)", part, off, h)
		}
		if !bytes.Equal(r.Key, orig.Key) || !bytes.Equal(r.Value, orig.Value) {
			t.Errorf("dead letter %d/%d: key %q value %q, produced key %q value %q", part, off, r.Key, r.Value, orig.Key, orig.Value)
		}
		if h[HeaderSourceTopic] != inTopic || h[HeaderReason] == "" || h[HeaderDetail] == "" {
			t.Errorf("dead letter %d/%d headers %v", part, off, h)
		}
		if ts, err := strconv.ParseInt(h[HeaderSourceTimestamp], 10, 64); err != nil || time.Since(time.UnixMilli(ts)) > time.Minute {
			t.Errorf("dead letter %d/%d source timestamp %q is not the record's recent log time", part, off, h[HeaderSourceTimestamp])
		}
		if _, truncated := h[HeaderTruncated]; truncated {
			t.Errorf("dead letter %d/%d marked truncated", part, off)
		}
	}
	// Keyed by the original key: a user's rejects land in one partition.
	byKey := map[string]int32{}
	for _, r := range got {
		if p0, ok := byKey[string(r.Key)]; ok && p0 != r.Partition {
			t.Errorf("key %q in partitions %d and %d", r.Key, p0, r.Partition)
		}
		byKey[string(r.Key)] = r.Partition
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// TestDeadLetterOversize: a record too large for a dead-letter batch is
// written truncated, marked with its original size, instead of blocking the
// pipeline.
func TestDeadLetterOversize(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 1)
	big := bytes.Repeat([]byte("x"), 3<<20)
	dls := []schemas.DeadLetter{
		{Partition: 0, Offset: 7, Key: []byte("u-1"), Value: big, Time: time.Now(), Reason: schemas.ReasonOversize, Detail: "message is 3 MiB"},
		{Partition: 0, Offset: 8, Key: nil, Value: []byte("{}"), Time: time.Now(), Reason: schemas.ReasonMissingField, Detail: "event_id: required"},
	}
	w := NewDeadLetterWriter(addrs, dlqTopic, nil, testLogger(t))
	defer w.Close()
	if err := w.Write(ctx, inTopic, dls); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := readTopic(ctx, t, addrs, dlqTopic, 2)
	for _, r := range got {
		h := headers(r)
		switch h[HeaderSourceOffset] {
		case "7":
			if h[HeaderTruncated] != strconv.Itoa(len(big)) || len(r.Value) >= 1<<20 || !bytes.Equal(r.Value, big[:len(r.Value)]) {
				t.Errorf("oversize dead letter: %d bytes, truncated header %q", len(r.Value), h[HeaderTruncated])
			}
		case "8":
			if string(r.Value) != "{}" || r.Key != nil || h[HeaderReason] != schemas.ReasonMissingField {
				t.Errorf("small dead letter: key %q value %q headers %v", r.Key, r.Value, h)
			}
		default:
			t.Errorf("unexpected dead letter %v", h)
		}
	}
}

// TestDeadLetterWriteGivesUpWithContext: with no topic to write to, Write
// retries until its context ends and then says what failed.
func TestDeadLetterWriteGivesUpWithContext(t *testing.T) {
	_, addrs := newCluster(t, 1)
	w := NewDeadLetterWriter(addrs, "no.such.dlq", nil, nil)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := w.Write(ctx, inTopic, []schemas.DeadLetter{{Value: []byte("x"), Reason: schemas.ReasonMalformedJSON, Detail: "d"}})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Unknown Topic") {
		t.Fatalf("Write to a missing topic = %v, want the context's error and the broker's", err)
	}
}
