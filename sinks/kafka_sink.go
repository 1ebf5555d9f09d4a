package sinks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
)

// VersionHeader is the record header that carries a recommendation's
// version as decimal ASCII, so that a consumer can drop stale records
// without parsing the value.
const VersionHeader = "recstream.version"

// KafkaSinkConfig configures the Kafka output sink. Brokers is required;
// every other zero field takes the default documented on it.
type KafkaSinkConfig struct {
	// Brokers are host:port addresses of the cluster. Required (the
	// top-level configuration shares kafka.brokers).
	Brokers []string `yaml:"brokers"`
	// Topic is the output topic: one record per refreshed user, key =
	// user_id, value = the recommendation's JSON (schemas/RECOMMENDATIONS.md).
	// Created with cleanup.policy=compact when missing. Default "recs.users".
	Topic string `yaml:"topic"`
	// Partitions is the partition count used when the sink creates the
	// topic. Zero means the input topic's count when InputTopic names an
	// existing topic, else 8. An existing topic keeps its count.
	Partitions int `yaml:"partitions"`
	// InputTopic is the pipeline's input topic, read only to size a new
	// output topic like it. Optional.
	InputTopic string `yaml:"input_topic"`
	// ReplicationFactor is used when the sink creates the topic. Default 1.
	ReplicationFactor int `yaml:"replication_factor"`
	// BatchBytes is the most bytes in one produce request per partition. At
	// most 1 MiB, the brokers' default message.max.bytes: larger batches are
	// refused ("Message Size Too Large"). Default 1 MiB.
	BatchBytes int `yaml:"batch_bytes"`
	// BatchSize is the most records in one produce request per partition.
	// Default 10000.
	BatchSize int `yaml:"batch_size"`
	// Linger is how long a partial batch waits for more records before it is
	// sent. Write is synchronous, so this adds to each write's latency.
	// Default 2ms.
	Linger time.Duration `yaml:"linger"`
	// WriteTimeout bounds one produce request, acknowledgement included.
	// Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
	// Default lz4 (the JSON repeats item ids and field names).
	Compression string `yaml:"compression"`

	// Transport carries the sink's requests to the brokers. The wiring
	// sets it, never YAML, with the TLS and SASL of kafka.tls and
	// kafka.sasl; give the sink one of its own (a shared transport caches
	// topic metadata and reports a topic created after its first look as
	// unknown). Nil means a new plaintext transport without authentication,
	// 5 s dial timeout.
	Transport *kafka.Transport `yaml:"-"`
}

// Defaults of KafkaSinkConfig.
const (
	DefaultKafkaSinkTopic             = "recs.users"
	DefaultKafkaSinkPartitions        = 8
	DefaultKafkaSinkReplicationFactor = 1
	DefaultKafkaSinkBatchBytes        = 1 << 20
	DefaultKafkaSinkBatchSize         = 10_000
	DefaultKafkaSinkLinger            = 2 * time.Millisecond
	DefaultKafkaSinkWriteTimeout      = 10 * time.Second
	DefaultKafkaSinkCompression       = "lz4"
)

// WithDefaults returns c with every zero field but Partitions (resolved at
// topic creation) set to its default.
func (c KafkaSinkConfig) WithDefaults() KafkaSinkConfig {
	if c.Topic == "" {
		c.Topic = DefaultKafkaSinkTopic
	}
	c.ReplicationFactor = cmp.Or(c.ReplicationFactor, DefaultKafkaSinkReplicationFactor)
	c.BatchBytes = cmp.Or(c.BatchBytes, DefaultKafkaSinkBatchBytes)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultKafkaSinkBatchSize)
	c.Linger = cmp.Or(c.Linger, DefaultKafkaSinkLinger)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultKafkaSinkWriteTimeout)
	if c.Compression == "" {
		c.Compression = DefaultKafkaSinkCompression
	}
	return c
}

// Validate checks c (after WithDefaults); errors name the YAML field.
func (c KafkaSinkConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker address is required")
	}
	if c.Topic == "" {
		return errors.New("topic: required")
	}
	if c.Partitions < 0 {
		return fmt.Errorf("partitions: must be >= 0, got %d", c.Partitions)
	}
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("replication_factor: must be >= 1, got %d", c.ReplicationFactor)
	}
	if c.BatchBytes < 1024 || c.BatchBytes > 1<<20 {
		return fmt.Errorf("batch_bytes: must be in 1024..1048576, got %d", c.BatchBytes)
	}
	if c.BatchSize < 1 {
		return fmt.Errorf("batch_size: must be >= 1, got %d", c.BatchSize)
	}
	if c.Linger < 0 {
		return fmt.Errorf("linger: must be >= 0, got %v", c.Linger)
	}
	if c.WriteTimeout <= 0 {
		return fmt.Errorf("write_timeout: must be > 0, got %v", c.WriteTimeout)
	}
	if _, err := kafkaCompression(c.Compression); err != nil {
		return err
	}
	return nil
}

func kafkaCompression(name string) (kafka.Compression, error) {
	switch name {
	case "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("compression: must be none, gzip, snappy, lz4 or zstd, got %q", name)
}

// KafkaSink writes each batch's recommendations to the compacted output
// topic, one record per user: key user_id, value the record's JSON, header
// VersionHeader, timestamp the record's produced_at. Records are spread over partitions by a murmur2 hash of the
// key, as Java clients and franz-go do, so every record of a user lands in
// one partition (where compaction keeps the newest) whichever client
// writes it. Its methods are safe for concurrent use.
type KafkaSink struct {
	cfg       KafkaSinkConfig
	log       *zap.Logger
	transport *kafka.Transport
	w         *kafka.Writer
	scratch   sync.Pool // *kafkaScratch
}

// NewKafkaSink creates the output topic if it is missing (compacted; see
// KafkaSinkConfig.Partitions for its size), checks that it has a leader for
// every partition, and returns a sink that writes to it. An existing topic
// that is not compacted is used with a warning: old versions would then be
// deleted by retention, not compaction.
//
// Errors wrap ErrUnavailable when the brokers cannot be reached. cfg is
// completed with WithDefaults and validated. A nil log means zap.NewNop().
func NewKafkaSink(ctx context.Context, cfg KafkaSinkConfig, log *zap.Logger) (*KafkaSink, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka output config: %w", err)
	}
	compression, _ := kafkaCompression(cfg.Compression)
	transport := cfg.Transport
	if transport == nil {
		transport = &kafka.Transport{DialTimeout: 5 * time.Second}
	}
	s := &KafkaSink{cfg: cfg, log: log, transport: transport}
	s.scratch.New = func() any { return new(kafkaScratch) }
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: 10 * time.Second}
	if err := s.ensureTopic(ctx, client); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	s.w = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchBytes:   int64(cfg.BatchBytes),
		BatchSize:    cfg.BatchSize,
		BatchTimeout: cfg.Linger,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		Compression:  compression,
		Transport:    transport,
		// Few attempts inside the client: the pipeline retries whole batches
		// with its own backoff and pauses consumption meanwhile.
		MaxAttempts:     3,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
	}
	return s, nil
}

// ensureTopic creates the topic if missing and checks it is usable.
func (s *KafkaSink) ensureTopic(ctx context.Context, client *kafka.Client) error {
	topic := s.cfg.Topic
	md, err := s.metadata(ctx, client, topic, s.cfg.InputTopic)
	if err != nil {
		return err
	}
	if md[topic] < 0 {
		// It exists but some partition has no leader yet.
		if err := s.waitForLeaders(ctx, client); err != nil {
			return err
		}
	} else if _, ok := md[topic]; !ok {
		partitions := s.cfg.Partitions
		if partitions == 0 {
			partitions = DefaultKafkaSinkPartitions
			if n := md[s.cfg.InputTopic]; s.cfg.InputTopic != "" && n > 0 {
				partitions = n
			}
		}
		err := createTopic(ctx, client, TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: s.cfg.ReplicationFactor,
			Configs: map[string]string{"cleanup.policy": "compact"}})
		if err != nil {
			return classify("create output topic "+topic, err, isKafkaTransient)
		}
		s.log.Info("created output topic", zap.String("topic", topic), zap.Int("partitions", partitions),
			zap.Int("replication_factor", s.cfg.ReplicationFactor), zap.String("cleanup.policy", "compact"))
		// Creation is asynchronous on a real cluster: wait for the leaders.
		if err := s.waitForLeaders(ctx, client); err != nil {
			return err
		}
	}
	policy, err := s.cleanupPolicy(ctx, client)
	if err != nil {
		return err
	}
	if !strings.Contains(policy, "compact") {
		s.log.Warn("output topic is not compacted: old versions of a user's record are deleted by retention instead of compaction",
			zap.String("topic", topic), zap.String("cleanup.policy", policy))
	}
	return nil
}

// metadata returns the partition counts of those of topics that exist.
func (s *KafkaSink) metadata(ctx context.Context, client *kafka.Client, topics ...string) (map[string]int, error) {
	var names []string
	for _, t := range topics {
		if t != "" {
			names = append(names, t)
		}
	}
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, classify(fmt.Sprintf("read metadata of %v from %v", names, s.cfg.Brokers), err, isKafkaTransient)
	}
	counts := map[string]int{}
	for _, t := range resp.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				continue
			}
			return nil, classify("read metadata of topic "+t.Name, t.Error, isKafkaTransient)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.ID < 0 {
				counts[t.Name] = -1 // exists, not ready
				break
			}
		}
		if counts[t.Name] == 0 {
			counts[t.Name] = len(t.Partitions)
		}
	}
	return counts, nil
}

// waitForLeaders polls the topic's metadata until every partition has a
// leader.
func (s *KafkaSink) waitForLeaders(ctx context.Context, client *kafka.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		md, err := s.metadata(ctx, client, s.cfg.Topic)
		if err == nil && md[s.cfg.Topic] > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return unavailable("wait for leaders of output topic "+s.cfg.Topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cleanupPolicy reads the topic's cleanup.policy. Just after creation, on a
// cluster of several brokers, the broker asked may not know the topic yet:
// UnknownTopicOrPartition is retried for a while before it counts.
func (s *KafkaSink) cleanupPolicy(ctx context.Context, client *kafka.Client) (string, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		policy, err := s.describeCleanupPolicy(ctx, client)
		if err == nil || !errors.Is(err, kafka.UnknownTopicOrPartition) || time.Now().After(deadline) {
			return policy, err
		}
		select {
		case <-ctx.Done():
			return "", unavailable("describe configs of output topic "+s.cfg.Topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *KafkaSink) describeCleanupPolicy(ctx context.Context, client *kafka.Client) (string, error) {
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: s.cfg.Topic, ConfigNames: []string{"cleanup.policy"},
	}}})
	if err != nil {
		return "", classify("describe configs of output topic "+s.cfg.Topic, err, isKafkaTransient)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return "", classify("describe configs of output topic "+s.cfg.Topic, r.Error, isKafkaTransient)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" {
				return e.ConfigValue, nil
			}
		}
	}
	return "", nil
}

// Topic returns the output topic's name.
func (s *KafkaSink) Topic() string { return s.cfg.Topic }

// kafkaScratch is the memory of one Write: every key, value and header of
// the batch lives in buf, so a write makes a handful of allocations
// whatever its row count.
type kafkaScratch struct {
	buf  []byte
	ends []int // per row: end of key, end of header value, end of value
	msgs []kafka.Message
	hdrs []kafka.Header
}

// Write produces one record per row of recs and returns when the brokers
// have acknowledged all of them (acks=all). events is not used: raw events
// are not part of the output topic. A nil or empty recs writes nothing.
//
// Writing the same batch again produces identical records (same key, value
// and header bytes), which compaction collapses. A failure may leave part
// of the batch written; retrying the whole batch is correct. Errors follow
// the package's classes: ErrUnavailable when the brokers or partition
// leaders cannot take the records now, the context's error when ctx ends,
// fatal otherwise (for example a record larger than BatchBytes).
func (s *KafkaSink) Write(ctx context.Context, _ *schemas.EventBatch, recs *schemas.RecommendationBatch) error {
	if recs == nil || recs.Recs == nil || recs.Recs.NumRows() == 0 {
		return nil
	}
	n := int(recs.Recs.NumRows())
	rows := schemas.RecRows(recs.Recs)
	sc := s.scratch.Get().(*kafkaScratch)

	// Encode every row into one buffer first, remembering where each part
	// ends, and slice the buffer only once it has stopped growing.
	sc.buf, sc.ends = slices.Grow(sc.buf[:0], encodedSizeHint(&rows, n)), sc.ends[:0]
	for i := range n {
		sc.buf = append(sc.buf, rows.UserID.Value(i)...)
		sc.ends = append(sc.ends, len(sc.buf))
		sc.buf = strconv.AppendUint(sc.buf, rows.Version.Value(i), 10)
		sc.ends = append(sc.ends, len(sc.buf))
		sc.buf = schemas.AppendRecommendationRowJSON(sc.buf, &rows, i)
		sc.ends = append(sc.ends, len(sc.buf))
	}
	if cap(sc.msgs) < n {
		sc.msgs, sc.hdrs = make([]kafka.Message, n), make([]kafka.Header, n)
	}
	sc.msgs, sc.hdrs = sc.msgs[:n], sc.hdrs[:n]
	start := 0
	for i := range n {
		keyEnd, hdrEnd, valEnd := sc.ends[3*i], sc.ends[3*i+1], sc.ends[3*i+2]
		sc.hdrs[i] = kafka.Header{Key: VersionHeader, Value: sc.buf[keyEnd:hdrEnd:hdrEnd]}
		sc.msgs[i] = kafka.Message{
			Key:     sc.buf[start:keyEnd:keyEnd],
			Value:   sc.buf[hdrEnd:valEnd:valEnd],
			Headers: sc.hdrs[i : i+1 : i+1],
			// The record's timestamp is produced_at (the input's log time),
			// not the clock, so a rewrite is identical to the original.
			Time: time.UnixMilli(int64(rows.ProducedAt.Value(i))),
		}
		start = valEnd
	}

	err := s.w.WriteMessages(ctx, sc.msgs...)
	if err != nil {
		// The writer may still hold the messages (it returns as soon as ctx
		// ends, with batches in flight): do not reuse their memory.
		return kafkaWriteError(ctx, fmt.Sprintf("produce %d records to %s", n, s.cfg.Topic), s.cfg.BatchBytes, err)
	}
	s.scratch.Put(sc)
	return nil
}

// encodedSizeHint estimates the bytes of n rows' keys, headers and JSON
// values, so that the buffer grows once rather than by doubling: fixed
// field names and numbers (about 320 bytes), user id twice, model version,
// items with quotes and commas, scores at up to 16 characters.
func encodedSizeHint(rows *schemas.RecommendationRows, n int) int {
	return n*320 + 2*len(rows.UserID.ValueBytes()) + len(rows.ModelVersion.ValueBytes()) +
		len(rows.ItemValues.ValueBytes()) + 3*rows.ItemValues.Len() + 16*rows.ScoreValues.Len()
}

// kafkaWriteError classifies a kafka-go Writer's error into the package's
// classes (see the package documentation), saying what was being done.
func kafkaWriteError(ctx context.Context, what string, batchBytes int, err error) error {
	if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%s: a record of %d bytes exceeds batch_bytes %d: %w",
			what, len(tooLarge.Message.Key)+len(tooLarge.Message.Value), batchBytes, err)
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		// Per-record errors: the batch is unavailable only if every failure
		// is transient; one fatal failure makes the batch fatal.
		failed, transient := 0, 0
		var first error
		for _, e := range werrs {
			if e == nil {
				continue
			}
			failed++
			if first == nil {
				first = e
			}
			if isKafkaTransient(e) {
				transient++
			} else {
				return fmt.Errorf("%s: %d of %d records failed: %w", what, werrs.Count(), len(werrs), e)
			}
		}
		if failed > 0 && failed == transient {
			return unavailable(fmt.Sprintf("%s: %d of %d records failed", what, failed, len(werrs)), first)
		}
	}
	return classify(what, err, isKafkaTransient)
}

// Close flushes nothing (Write is synchronous) and closes the connections.
func (s *KafkaSink) Close() error {
	err := s.w.Close()
	s.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close kafka output writer: %w", err)
	}
	return nil
}

// isKafkaTransient reports whether a Kafka error is worth retrying: the
// network's failures and the broker errors that say a broker, leader or
// replica is not available now.
func isKafkaTransient(err error) bool {
	if isTransientNetwork(err) {
		return true
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || kerr == kafka.BrokerNotAvailable || kerr == kafka.ReplicaNotAvailable
	}
	return false
}
