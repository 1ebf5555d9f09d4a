package drills

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/internal/embedded"
)

// TestDrillTopicsKeepOldRecords: the drill's input carries months-old event
// times as log times. On brokers that check retention every half second
// (instead of 30 s after start, then every 5 min) and roll segments every
// 100 ms, the input and dead-letter topics the drill creates must keep every
// record. With the broker's default 7-day time retention they were deleted
// at the first check, before a restarted pipeline could read them: the
// kill -9 drill counted them as lost (issue 16).
func TestDrillTopicsKeepOldRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kafka, err := embedded.StartApacheKafka(ctx, embedded.ApacheKafkaConfig{
		Dir: filepath.Join(t.TempDir(), "kafka"), Brokers: clusterBrokers, Partitions: 2,
		ReplicationFactor: replicationFactor, MinInsyncReplicas: minInsyncReplicas,
		ServerProperties: map[string]string{
			"log.initial.task.delay.ms":       "0",
			"log.retention.check.interval.ms": "500",
			"log.roll.ms":                     "100",
		},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Skipf("Apache Kafka not available (run make setup): %v", err)
	}
	t.Cleanup(func() { kafka.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	env := &environment{kafka: kafka, admCl: cl, adm: kadm.NewClient(cl)}
	const input, dlq, output, control = "t.events", "t.dlq", "t.recs", "t.default"
	if err := env.createTopics(ctx, 2, input, dlq, output); err != nil {
		t.Fatal(err)
	}
	// A topic with the broker's defaults shows the test would catch the loss.
	if _, err := env.adm.CreateTopic(ctx, 2, replicationFactor, nil, control); err != nil {
		t.Fatal(err)
	}
	if err := kafka.WaitInSync(ctx, control); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // the drill's event times
	topics := []string{input, dlq, control}
	for round := range 5 { // several produce rounds, so that segments roll
		var recs []*kgo.Record
		for _, topic := range topics {
			for p := range int32(2) {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte("x"),
					Timestamp: old.Add(time.Duration(round) * time.Second)})
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The control topic's log start moves once a check ran; then the drill's
	// topics must still start at 0.
	deadline := time.Now().Add(30 * time.Second)
	for {
		starts, err := env.adm.ListStartOffsets(ctx, topics...)
		if err != nil {
			t.Fatal(err)
		}
		controlDeleted := false
		starts.Each(func(o kadm.ListedOffset) {
			if o.Topic == control && o.Offset > 0 {
				controlDeleted = true
			}
		})
		if controlDeleted {
			starts.Each(func(o kadm.ListedOffset) {
				if o.Topic != control && o.Offset != 0 {
					t.Errorf("%s/%d starts at offset %d: the broker deleted the drill's records by time retention", o.Topic, o.Partition, o.Offset)
				}
			})
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retention check deleted anything from %s within 30 s: the test cannot tell", control)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
