package evaluation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLoadKafkaRanges produces 3 partitions of events, 20 per partition
// with log times a second apart, and reads ranges of them by offset and by
// time from a real (in-process) broker over TCP.
func TestLoadKafkaRanges(t *testing.T) {
	const topic, partitions, perPartition = "events", 3, 20
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for p := range partitions {
		for i := range perPartition {
			user := fmt.Sprintf("u%d", p)
			at := t0.Add(time.Duration(i) * time.Second)
			value := fmt.Sprintf(`{"event_id":"e%d-%d","user_id":"%s","item_id":"i%d","type":"view","ts":%d}`, p, i, user, i, at.UnixMilli())
			if i == 5 {
				value = `{"broken` // counted, not loaded
			}
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Key: []byte(user), Value: []byte(value), Timestamp: at})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	for _, tc := range []struct {
		name        string
		r           KafkaRange
		events      int
		skipped     int
		first, last int64 // event times, s after t0
	}{
		{"everything", KafkaRange{FromOffset: -1, ToOffset: -1}, partitions * (perPartition - 1), partitions, 0, 19},
		{"offsets [10, 15)", KafkaRange{FromOffset: 10, ToOffset: 15}, partitions * 5, 0, 10, 14},
		{"offsets [3, 8)", KafkaRange{FromOffset: 3, ToOffset: 8}, partitions * 4, partitions, 3, 7},
		{"times [12s, 17s)", KafkaRange{FromOffset: -1, ToOffset: -1, FromTime: t0.Add(12 * time.Second), ToTime: t0.Add(17 * time.Second)}, partitions * 5, 0, 12, 16},
		{"time and offset: the narrower wins", KafkaRange{FromOffset: 15, ToOffset: -1, FromTime: t0.Add(12 * time.Second)}, partitions * 5, 0, 15, 19},
		{"an empty range", KafkaRange{FromOffset: 7, ToOffset: 7}, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.Brokers, r.Topic = brokers, topic
			ds, err := LoadKafka(ctx, r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Events) != tc.events || ds.Skipped != tc.skipped {
				t.Fatalf("%d events, %d skipped; want %d and %d", len(ds.Events), ds.Skipped, tc.events, tc.skipped)
			}
			if tc.events == 0 {
				return
			}
			first, last := ds.Span(0, len(ds.Events))
			if first != t0.Add(time.Duration(tc.first)*time.Second).UnixMilli() || last != t0.Add(time.Duration(tc.last)*time.Second).UnixMilli() {
				t.Errorf("events span %d..%d, want %ds..%ds after t0", first-t0.UnixMilli(), last-t0.UnixMilli(), tc.first, tc.last)
			}
			if len(ds.Users) != partitions || !strings.HasPrefix(ds.Source, "kafka topic events") {
				t.Errorf("users %v, source %q", ds.Users, ds.Source)
			}
		})
	}

	for _, tc := range []struct {
		r    KafkaRange
		want string
	}{
		{KafkaRange{Topic: topic}, "brokers: at least one is required"},
		{KafkaRange{Brokers: brokers}, "topic: must be set"},
		{KafkaRange{Brokers: brokers, Topic: topic, FromOffset: 5, ToOffset: 2}, "to-offset: 2 is before from-offset 5"},
		{KafkaRange{Brokers: brokers, Topic: topic, FromOffset: -1, ToOffset: -1, FromTime: t0, ToTime: t0.Add(-time.Hour)}, "to-time"},
		{KafkaRange{Brokers: brokers, Topic: "missing", FromOffset: -1, ToOffset: -1}, "missing"},
	} {
		if _, err := LoadKafka(ctx, tc.r, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.want)
		}
	}
}
