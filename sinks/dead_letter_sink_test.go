package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/schemas"
)

const (
	dlqTopic   = "clickstream.dlq"
	inputTopic = "clickstream.events"
)

// TestDeadLetterRoundTrip writes rejected records and reads them back: key
// and value byte-identical to what the producer wrote, reason and source
// position in headers, a user's rejects in one partition.
func TestDeadLetterRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := newKfake(t, kfake.SeedTopics(2, dlqTopic)).ListenAddrs()
	logTime := time.Now().Truncate(time.Millisecond)
	var dls []schemas.DeadLetter
	for i := range 100 {
		dls = append(dls, schemas.DeadLetter{Partition: i % 3, Offset: int64(i), Key: fmt.Appendf(nil, "u-%d", i%7),
			Value: fmt.Appendf(nil, `{"broken json %d`, i), Time: logTime, Reason: schemas.ReasonMalformedJSON, Detail: "unexpected end"})
	}
	w := NewDeadLetterSink(addrs, dlqTopic, nil, nil)
	defer w.Close()
	if err := w.Write(ctx, inputTopic, dls); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := consumeAll(t, addrs, dlqTopic, len(dls))
	byKey := map[string]int32{}
	for _, r := range got {
		h := headers(r)
		off, _ := strconv.Atoi(h[HeaderSourceOffset])
		if off < 0 || off >= len(dls) {
			t.Fatalf("dead letter names offset %q, which was not written (headers %v)", h[HeaderSourceOffset], h)
		}
		orig := dls[off]
		if !bytes.Equal(r.Key, orig.Key) || !bytes.Equal(r.Value, orig.Value) {
			t.Errorf("dead letter %d: key %q value %q, want key %q value %q", off, r.Key, r.Value, orig.Key, orig.Value)
		}
		if h[HeaderSourceTopic] != inputTopic || h[HeaderSourcePartition] != strconv.Itoa(orig.Partition) ||
			h[HeaderReason] != schemas.ReasonMalformedJSON || h[HeaderDetail] != "unexpected end" ||
			h[HeaderSourceTimestamp] != strconv.FormatInt(logTime.UnixMilli(), 10) {
			t.Errorf("dead letter %d headers %v", off, h)
		}
		if _, truncated := h[HeaderTruncated]; truncated {
			t.Errorf("dead letter %d marked truncated", off)
		}
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
	addrs := newKfake(t, kfake.SeedTopics(1, dlqTopic)).ListenAddrs()
	big := bytes.Repeat([]byte("x"), 3<<20)
	dls := []schemas.DeadLetter{
		{Partition: 0, Offset: 7, Key: []byte("u-1"), Value: big, Time: time.Now(), Reason: schemas.ReasonOversize, Detail: "message is 3 MiB"},
		{Partition: 0, Offset: 8, Key: nil, Value: []byte("{}"), Time: time.Now(), Reason: schemas.ReasonMissingField, Detail: "event_id: required"},
	}
	w := NewDeadLetterSink(addrs, dlqTopic, nil, nil)
	defer w.Close()
	if err := w.Write(ctx, inputTopic, dls); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, r := range consumeAll(t, addrs, dlqTopic, 2) {
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

// TestDeadLetterErrorClasses: the dead-letter sink reports failures in the
// classes the other sinks use, so the pipeline retries it the same way: a
// broker that is gone is unavailable (retried, consumption paused), a
// cancelled context is the caller's.
func TestDeadLetterErrorClasses(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, dlqTopic))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	w := NewDeadLetterSink(addrs, dlqTopic, nil, nil)
	defer w.Close()
	letter := []schemas.DeadLetter{{Value: []byte("x"), Reason: schemas.ReasonMalformedJSON, Detail: "d"}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Write(ctx, inputTopic, letter); err != nil {
		t.Fatalf("Write while the broker is up: %v", err)
	}
	c.Close()
	if err := w.Write(ctx, inputTopic, letter); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Write with the broker gone = %v, want ErrUnavailable", err)
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if err := w.Write(cancelled, inputTopic, letter); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Write with a cancelled context = %v, want context.Canceled and not ErrUnavailable", err)
	}
}
