package embedded

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The embedded Apache Kafka cluster's settings and their checks.

// ApacheKafkaConfig describes a real Apache Kafka cluster in KRaft mode: each
// node is a combined broker and controller, so the controller quorum has as
// many voters as there are nodes.
type ApacheKafkaConfig struct {
	// Dir holds one directory per node (node-1, node-2, ...) with its
	// server.properties, log4j2.properties, data/ and log/. It must be set.
	// A cluster started again on the Dir of an earlier one keeps its data
	// and cluster id (the ports are new).
	Dir string `yaml:"dir"`
	// Brokers is the number of nodes, 1 to 9; 0 means 1.
	Brokers int `yaml:"brokers"`
	// Partitions is the partition count of Topics and of topics that are
	// created automatically (num.partitions); 0 means 8.
	Partitions int `yaml:"partitions"`
	// Topics are created at start-up, if missing, with Partitions,
	// ReplicationFactor and MinInsyncReplicas; Start returns once each of
	// their partitions has a leader and a full ISR.
	Topics []string `yaml:"topics"`
	// ReplicationFactor is the replication factor of Topics and the
	// broker's default.replication.factor; 0 means Brokers. The internal
	// topics (__consumer_offsets, __transaction_state) always have
	// Brokers replicas.
	ReplicationFactor int `yaml:"replication_factor"`
	// MinInsyncReplicas is min.insync.replicas of the brokers and of
	// Topics: how many replicas must have a write before acks=all succeeds.
	// 0 means ReplicationFactor-1, at least 1 (2 for 3 replicas).
	MinInsyncReplicas int `yaml:"min_insync_replicas"`
	// HeapMB is each node's JVM heap (-Xmx) in MiB; 0 means 512.
	HeapMB int `yaml:"heap_mb"`
	// LibsDir is the directory of the broker's jars; empty means the
	// RECSTREAM_KAFKA_LIBS environment variable, then .deps/kafka/libs in
	// the working directory or the nearest directory above it that has one
	// (where `make setup` puts them).
	LibsDir string `yaml:"libs_dir"`
	// ServerProperties adds or overrides broker settings of every node
	// (for example unclean.leader.election.enable for a drill). Empty adds
	// nothing. Listeners, node ids and directories cannot be overridden.
	ServerProperties map[string]string `yaml:"server_properties"`
}

// Defaults returns c with each zero field set to its documented default.
func (c ApacheKafkaConfig) Defaults() ApacheKafkaConfig {
	c.Brokers = cmp.Or(c.Brokers, 1)
	c.Partitions = cmp.Or(c.Partitions, 8)
	c.ReplicationFactor = cmp.Or(c.ReplicationFactor, c.Brokers)
	c.MinInsyncReplicas = cmp.Or(c.MinInsyncReplicas, max(1, c.ReplicationFactor-1))
	c.HeapMB = cmp.Or(c.HeapMB, 512)
	return c
}

// fixedServerProperties are the settings ServerProperties must not touch:
// changing them would break the cluster's wiring or its directories.
var fixedServerProperties = []string{
	"process.roles", "node.id", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
	"listeners", "advertised.listeners", "listener.security.protocol.map",
	"controller.listener.names", "inter.broker.listener.name", "log.dirs", "log.dir", "metadata.log.dir",
}

// Validate reports the first invalid field of c (after Defaults), naming
// its yaml key.
func (c ApacheKafkaConfig) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("dir: must be set")
	case strings.ContainsAny(c.Dir, ",\\\n\r"):
		// The path goes into server.properties (log.dirs is a list) and
		// log4j2.properties unescaped.
		return fmt.Errorf("dir: must not contain a comma, backslash or line break, got %q", c.Dir)
	case c.Brokers < 1 || c.Brokers > 9:
		return fmt.Errorf("brokers: must be between 1 and 9, got %d", c.Brokers)
	case c.Partitions < 1:
		return fmt.Errorf("partitions: must be > 0, got %d", c.Partitions)
	case c.ReplicationFactor < 1 || c.ReplicationFactor > c.Brokers:
		return fmt.Errorf("replication_factor: must be between 1 and brokers (%d), got %d", c.Brokers, c.ReplicationFactor)
	case c.MinInsyncReplicas < 1 || c.MinInsyncReplicas > c.ReplicationFactor:
		return fmt.Errorf("min_insync_replicas: must be between 1 and replication_factor (%d), got %d",
			c.ReplicationFactor, c.MinInsyncReplicas)
	case c.HeapMB < 128:
		return fmt.Errorf("heap_mb: must be >= 128, got %d", c.HeapMB)
	}
	for _, t := range c.Topics {
		if t == "" {
			return errors.New("topics: a topic name is empty")
		}
	}
	for k, v := range c.ServerProperties {
		if slices.Contains(fixedServerProperties, k) {
			return fmt.Errorf("server_properties: %s is set by the cluster itself and cannot be overridden", k)
		}
		if strings.ContainsAny(k+v, "\n\r") || k == "" {
			return fmt.Errorf("server_properties: %q: key must be non-empty and neither key nor value may hold a line break", k)
		}
	}
	return nil
}
