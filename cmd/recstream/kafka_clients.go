package main

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
)

// newKgoClient returns a franz-go client of brokers that connects with
// cfg's kafka.tls and kafka.sasl, for the commands that read Kafka outside
// the pipeline (replay's offset look-ups, the ClickHouse rebuild).
func newKgoClient(cfg config.Config, brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	auth, err := kafkaauth.New(cfg.Kafka.Auth())
	if err != nil {
		return nil, usageError{fmt.Errorf("kafka.%w", err)}
	}
	cl, err := kgo.NewClient(append(append(auth.KgoOptions(), kgo.SeedBrokers(brokers...)), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}
