package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/internal/embedded"
)

// startApacheKafka is the kafkaStarter of a single real Apache Kafka broker
// (KRaft mode, a JVM child process) under dir.
func startApacheKafka(t *testing.T, s *stack, dir string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	k, err := embedded.StartApacheKafka(ctx, embedded.ApacheKafkaConfig{
		Dir: filepath.Join(dir, "apache-kafka"), Brokers: 1, Partitions: partitions,
		Topics: []string{testInputTopic, testDLQTopic},
	}, zaptest.NewLogger(t).Named("apache-kafka"))
	if err != nil {
		t.Fatalf("start apache kafka: %v", err)
	}
	t.Logf("apache kafka ready in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("stop apache kafka: %v", err)
		}
	})
	s.apache, s.addrs = k, k.Addrs()
}

// TestBadInputLosesNothingOnApacheKafka is TestBadInputLosesNothing against
// a real Apache Kafka broker instead of kfake: the same 10,000 events with
// every kind of bad input, the same promise. It catches what kfake forgives:
// the real group protocol and coordinator, the real compacted output topic,
// real offset commits, and topic creation that is asynchronous.
func TestBadInputLosesNothingOnApacheKafka(t *testing.T) {
	s := startStackOn(t, 4, startApacheKafka)
	p := produce(t, s, 7, 10000, 0.08)
	if len(p.byKind) < 6 {
		t.Fatalf("generator made too few kinds of bad input: %v", p.byKind)
	}
	c := runUntil(t, s, uint64(p.total))
	assertNothingLost(t, s, p, c.pipeline.Stats().Snapshot())
}
