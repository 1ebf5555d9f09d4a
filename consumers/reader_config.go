package consumers

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/schemas"
)

// Defaults of ReaderConfig.
const (
	DefaultTopic              = "clickstream.events"
	DefaultGroupID            = "recstream"
	DefaultDeadLetterTopic    = "clickstream.dlq"
	DefaultStartOffset        = StartEarliest
	DefaultFetchMaxBytes      = 10 << 20
	DefaultMaxBufferedBatches = 2
	DefaultSessionTimeout     = 30 * time.Second
	DefaultHeartbeatInterval  = 3 * time.Second

	// StartEarliest starts a partition without a committed offset at its
	// first record.
	StartEarliest = "earliest"
	// StartLatest starts a partition without a committed offset at its end:
	// only records produced after the consumer joined are read.
	StartLatest = "latest"
)

// ReaderConfig configures a Consumer. The zero value of each field means its
// default; Brokers is required.
type ReaderConfig struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string `yaml:"brokers"`
	// Topic is the input topic. It must exist: recstream never creates its
	// input. Zero means "clickstream.events".
	Topic string `yaml:"topic"`
	// GroupID is the Kafka consumer group; instances with the same group
	// share the topic's partitions and its committed offsets. Zero means
	// "recstream".
	GroupID string `yaml:"group_id"`
	// DeadLetterTopic is where rejected records go (written by a
	// sinks.DeadLetterSink, not by the Consumer). Zero means "clickstream.dlq".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// StartOffset says where to start a partition that has no committed
	// offset, and where to go when the committed offset is past the end of
	// the partition: "earliest" or "latest". Zero means "earliest".
	StartOffset string `yaml:"start_offset"`
	// FetchMaxBytes bounds one fetch from one partition (the broker returns
	// at least one record batch even when that is larger). Zero means
	// 10 MiB.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// MaxBufferedBatches is how many complete batches wait for Next before
	// fetching stops (back-pressure). Zero means 2. See Consumer for the
	// memory bound it gives.
	MaxBufferedBatches int `yaml:"max_buffered_batches"`
	// SessionTimeout is how long the group coordinator waits for a
	// heartbeat before it declares this instance dead and moves its
	// partitions. Zero means 30s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often this instance heartbeats, which is also
	// how soon it notices a rebalance. Zero means 3s; keep it well below
	// SessionTimeout.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// Batch bounds each micro-batch.
	Batch BatchConfig `yaml:"batch"`
	// Limits is the event contract the decoder enforces.
	Limits schemas.EventLimits `yaml:"limits"`

	// ResumeFrom is set by the wiring, never from YAML, when the scorer's
	// state was restored from a checkpoint (or is rebuilt by a replay): it
	// is, per partition, the next offset the state has not applied. The
	// consumer then never starts a partition at its committed offset, which
	// may be ahead of the state (commits go on after the last checkpoint):
	// whenever a partition is assigned, in the first generation or any
	// later one, it starts where the state stands — its ResumeFrom offset,
	// moved on by every batch Next returns — and an unlisted partition,
	// whose users the state does not hold, at its earliest offset. Events
	// after the checkpoint are applied again and their outputs rewritten
	// with the same versions, which the sinks absorb; events the state
	// already holds are recognised per user and skipped by the scorer.
	// Nil means start at the committed offsets.
	ResumeFrom map[int]int64 `yaml:"-"`
	// Dialer connects to the brokers, for the group and every fetcher. The
	// wiring sets it, never YAML, with the TLS and SASL of kafka.tls and
	// kafka.sasl. Nil means plaintext without authentication, 10 s dial
	// timeout.
	Dialer *kafka.Dialer `yaml:"-"`
}

// WithDefaults returns c with every zero field set to its default.
func (c ReaderConfig) WithDefaults() ReaderConfig {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if c.StartOffset == "" {
		c.StartOffset = DefaultStartOffset
	}
	c.FetchMaxBytes = cmp.Or(c.FetchMaxBytes, DefaultFetchMaxBytes)
	c.MaxBufferedBatches = cmp.Or(c.MaxBufferedBatches, DefaultMaxBufferedBatches)
	c.SessionTimeout = cmp.Or(c.SessionTimeout, DefaultSessionTimeout)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.Batch = c.Batch.WithDefaults()
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports the first invalid field of c, naming its yaml key
// (nested keys as batch.max_rows). Zero fields other than brokers are
// valid: they mean the default.
func (c ReaderConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker address (host:port) is required")
	}
	for i, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("brokers[%d]: %q is not host:port", i, b)
		}
	}
	if c.Topic != "" && c.Topic == c.DeadLetterTopic {
		return fmt.Errorf("dead_letter_topic: must differ from topic %q", c.Topic)
	}
	switch c.StartOffset {
	case "", StartEarliest, StartLatest:
	default:
		return fmt.Errorf("start_offset: must be %q or %q, got %q", StartEarliest, StartLatest, c.StartOffset)
	}
	switch {
	case c.FetchMaxBytes < 0:
		return fmt.Errorf("fetch_max_bytes: must be > 0 (0 means %d), got %d", DefaultFetchMaxBytes, c.FetchMaxBytes)
	case c.MaxBufferedBatches < 0:
		return fmt.Errorf("max_buffered_batches: must be > 0 (0 means %d), got %d", DefaultMaxBufferedBatches, c.MaxBufferedBatches)
	case c.SessionTimeout < 0:
		return fmt.Errorf("session_timeout: must be > 0 (0 means %s), got %s", DefaultSessionTimeout, c.SessionTimeout)
	case c.HeartbeatInterval < 0:
		return fmt.Errorf("heartbeat_interval: must be > 0 (0 means %s), got %s", DefaultHeartbeatInterval, c.HeartbeatInterval)
	}
	if d := c.WithDefaults(); d.HeartbeatInterval >= d.SessionTimeout {
		return fmt.Errorf("heartbeat_interval: must be below session_timeout (%s), got %s", d.SessionTimeout, d.HeartbeatInterval)
	}
	if err := c.Batch.Validate(); err != nil {
		return fmt.Errorf("batch.%w", err)
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("limits.%w", err)
	}
	return nil
}
