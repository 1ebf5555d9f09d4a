package sinks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/segmentio/kafka-go"
)

// TopicSpec describes a topic for EnsureTopic.
type TopicSpec struct {
	// Name is the topic name. Required.
	Name string
	// Partitions is the partition count. Zero means the broker's default.
	Partitions int
	// ReplicationFactor is the number of replicas of each partition. Zero
	// means the broker's default.
	ReplicationFactor int
	// Configs are topic-level settings, for example
	// {"cleanup.policy": "compact"} or {"retention.ms": "604800000"}.
	Configs map[string]string
}

// EnsureTopic creates spec's topic when it does not exist, connecting
// through transport (the wiring's, with TLS and SASL; nil means a new
// plaintext one). An existing topic is left as it is, even when its
// partitions or configs differ from spec.
func EnsureTopic(ctx context.Context, brokers []string, transport *kafka.Transport, spec TopicSpec) error {
	if len(brokers) == 0 {
		return fmt.Errorf("ensure topic %s: no brokers", spec.Name)
	}
	if transport == nil {
		// Its own: the shared default caches metadata (FACTS.md).
		transport = &kafka.Transport{}
		defer transport.CloseIdleConnections()
	}
	return createTopic(ctx, &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}, spec)
}

// createTopic creates spec's topic through client unless it exists: the
// one place recstream creates topics (the dead-letter topic, the output
// topic).
func createTopic(ctx context.Context, client *kafka.Client, spec TopicSpec) error {
	if spec.Name == "" {
		return errors.New("ensure topic: name is required")
	}
	tc := kafka.TopicConfig{Topic: spec.Name, NumPartitions: -1, ReplicationFactor: -1}
	if spec.Partitions > 0 {
		tc.NumPartitions = spec.Partitions
	}
	if spec.ReplicationFactor > 0 {
		tc.ReplicationFactor = spec.ReplicationFactor
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Configs)) {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: spec.Configs[k]})
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err == nil {
		err = resp.Errors[spec.Name]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s (%d partitions, replication %d): %w",
			spec.Name, tc.NumPartitions, tc.ReplicationFactor, err)
	}
	return nil
}
