package embedded

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaConfig describes an in-process broker.
type KafkaConfig struct {
	// DataDir persists the log on disk so that a restart (or kill -9 of the
	// process) keeps the data. Empty means memory only, which holds about
	// 0.7 GB per million messages.
	DataDir string
	// Brokers is the number of brokers of the cluster; 0 means 1.
	Brokers int
	// Partitions is the partition count of Topics; 0 means 8.
	Partitions int
	// Topics are created at start-up, if missing.
	Topics []string
	// Ports fixes the listening ports (127.0.0.1), one per broker; empty
	// picks free ports.
	Ports []int
}

// KafkaBroker is an in-process Kafka cluster listening on 127.0.0.1.
type KafkaBroker struct {
	cluster *kfake.Cluster
}

// StartKafka starts an in-process Kafka cluster.
func StartKafka(cfg KafkaConfig) (*KafkaBroker, error) {
	if cfg.Brokers <= 0 {
		cfg.Brokers = 1
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 8
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(cfg.Brokers),
		kfake.DefaultNumPartitions(cfg.Partitions),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if len(cfg.Ports) > 0 {
		opts = append(opts, kfake.Ports(cfg.Ports...))
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start in-process kafka (data dir %q): %w", cfg.DataDir, err)
	}
	return &KafkaBroker{cluster: c}, nil
}

// Addrs returns the brokers' host:port addresses.
func (b *KafkaBroker) Addrs() []string { return b.cluster.ListenAddrs() }

// AddrList returns the addresses joined by commas, as configuration takes them.
func (b *KafkaBroker) AddrList() string { return strings.Join(b.Addrs(), ",") }

// Cluster exposes the underlying kfake cluster to tests and drills (fault
// injection, compaction on demand).
func (b *KafkaBroker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the brokers; with a DataDir the log is flushed to disk first.
func (b *KafkaBroker) Close() { b.cluster.Close() }
