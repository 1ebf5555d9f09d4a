// Package config loads recstream's configuration: one typed struct, read
// from YAML, overridden by environment variables, validated at start-up.
//
// Every field can be set from the environment as RECSTREAM_ followed by its
// YAML path in upper case with dots as underscores, for example
// RECSTREAM_INPUT_BATCH_MAX_ROWS=2000 or RECSTREAM_KAFKA_BROKERS=a:9092,b:9092.
// The value is parsed as YAML (lists may also be comma-separated).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/cmd/recstream/internal/tlsconfig"
	"github.com/recstream/recstream/consumers"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/state"
	"github.com/recstream/recstream/sinks"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "RECSTREAM"

// Config is the whole configuration of a recstream process.
type Config struct {
	// Kafka holds the brokers shared by the input, the dead-letter topic and
	// the output topic.
	Kafka KafkaConfig `yaml:"kafka"`
	// Input is the clickstream consumer.
	Input consumers.ReaderConfig `yaml:"input"`
	// Scorer is the model and user-state configuration.
	Scorer scorers.Config `yaml:"scorer"`
	// ClickHouse is the analytics and serving sink.
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	// Output is the Kafka output topic of recommendations.
	Output sinks.KafkaSinkConfig `yaml:"output"`
	// Checkpoint saves user state with the offsets it reflects.
	Checkpoint state.CheckpointConfig `yaml:"checkpoint"`
	// Pipeline tunes retries and shutdown.
	Pipeline pipeline.Config `yaml:"pipeline"`
	// Log sets the log format and level.
	Log LogConfig `yaml:"log"`
	// Metrics serves Prometheus metrics and health probes.
	Metrics MetricsConfig `yaml:"metrics"`
}

// ClickHouseConfig is the ClickHouse sink's section: the sink's own
// settings, and the files that secure its connection, which the sink takes
// built (Sink).
type ClickHouseConfig struct {
	sinks.ClickHouseConfig `yaml:",inline"`
	// TLSFiles encrypts the connection (the server's secure native port,
	// 9440 by default). Off by default.
	TLSFiles tlsconfig.Config `yaml:"tls"`
}

// WithDefaults fills the sink's zero fields.
func (c ClickHouseConfig) WithDefaults() ClickHouseConfig {
	c.ClickHouseConfig = c.ClickHouseConfig.WithDefaults()
	return c
}

// Validate reports the first invalid field, by its path below clickhouse.
func (c ClickHouseConfig) Validate() error {
	if err := c.ClickHouseConfig.Validate(); err != nil {
		return err
	}
	if err := c.TLSFiles.Validate(); err != nil {
		return fmt.Errorf("tls.%w", err)
	}
	return nil
}

// Sink returns the sink's configuration with its TLS built from the files.
func (c ClickHouseConfig) Sink() (sinks.ClickHouseConfig, error) {
	sc := c.ClickHouseConfig
	tlsCfg, err := c.TLSFiles.Build()
	if err != nil {
		return sc, fmt.Errorf("clickhouse.tls.%w", err)
	}
	sc.TLS = tlsCfg
	return sc, nil
}

// KafkaConfig names the Kafka cluster and how to connect to it. Every
// Kafka client of the process (consumer, dead-letter sink, topic
// creation, output sink, lag monitor) uses the same TLS and SASL.
type KafkaConfig struct {
	// Brokers are host:port addresses of the cluster. Required.
	Brokers []string `yaml:"brokers"`
	// TLS encrypts the connections to the brokers. Off by default.
	TLS tlsconfig.Config `yaml:"tls"`
	// SASL authenticates to the brokers (PLAIN, SCRAM-SHA-256,
	// SCRAM-SHA-512). Off by default.
	SASL kafkaauth.SASLConfig `yaml:"sasl"`
}

// Auth returns the security settings in the shape kafkaauth.New takes.
func (k KafkaConfig) Auth() kafkaauth.Config {
	return kafkaauth.Config{TLS: k.TLS, SASL: k.SASL}
}

// MetricsConfig is the operations endpoint: Prometheus metrics and health
// probes over HTTP.
type MetricsConfig struct {
	// Listen is the host:port of the HTTP server that serves /metrics,
	// /healthz and /readyz, for example "127.0.0.1:9464" (":9464" listens
	// on every interface, as a container needs). Empty disables the server.
	Listen string `yaml:"listen"`
	// LagInterval is how often the brokers are asked for the input
	// partitions' end offsets, from which consumer lag is computed.
	// Default 10s.
	LagInterval time.Duration `yaml:"lag_interval"`
	// StallTimeout is how long one batch may stay in the scorer before
	// /healthz reports the process stuck. Default 5m.
	StallTimeout time.Duration `yaml:"stall_timeout"`
}

// Defaults of MetricsConfig.
const (
	DefaultMetricsLagInterval  = 10 * time.Second
	DefaultMetricsStallTimeout = 5 * time.Minute
)

// WithDefaults fills zero fields.
func (m MetricsConfig) WithDefaults() MetricsConfig {
	if m.LagInterval == 0 {
		m.LagInterval = DefaultMetricsLagInterval
	}
	if m.StallTimeout == 0 {
		m.StallTimeout = DefaultMetricsStallTimeout
	}
	return m
}

// Validate checks the metrics settings.
func (m MetricsConfig) Validate() error {
	if m.Listen != "" {
		if _, _, err := net.SplitHostPort(m.Listen); err != nil {
			return fmt.Errorf("listen: %q is not host:port: %w", m.Listen, err)
		}
	}
	if m.LagInterval < 100*time.Millisecond {
		return fmt.Errorf("lag_interval: must be >= 100ms, got %s", m.LagInterval)
	}
	if m.StallTimeout <= 0 {
		return fmt.Errorf("stall_timeout: must be > 0, got %s", m.StallTimeout)
	}
	return nil
}

// LogConfig selects the log output.
type LogConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is json (production), console (a terminal) or auto (default:
	// console when stderr is a terminal, json otherwise).
	Format string `yaml:"format"`
}

// Load reads a YAML file (empty path: defaults only), applies environment
// overrides from environ (as os.Environ returns), fills defaults and
// validates. Errors name the field at fault.
func Load(path string, environ []string) (Config, error) {
	var cfg Config
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
		}
		if err := Parse(raw, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, EnvPrefix, environ); err != nil {
		return Config{}, fmt.Errorf("config from environment: %w", err)
	}
	if err := resolveSecretFiles(&cfg); err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Parse decodes YAML into cfg, refusing unknown fields so that a typo is
// an error rather than a silently ignored setting. Errors name the field by
// its YAML path, not only by line.
func Parse(raw []byte, cfg *Config) error {
	var root yaml.Node
	// An empty file is io.EOF: all defaults.
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return fmt.Errorf("parse yaml: %w", err)
	}
	if len(root.Content) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			paths := keyPathsByLine(&root, "", map[int]string{})
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = m
				var line int
				if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr == nil && paths[line] != "" {
					msgs[i] = paths[line] + ": " + m
				}
			}
			return fmt.Errorf("parse yaml: %s", strings.Join(msgs, "; "))
		}
		return fmt.Errorf("parse yaml: %w", err)
	}
	return nil
}

// keyPathsByLine maps each line holding a mapping key to the key's dotted path.
func keyPathsByLine(n *yaml.Node, prefix string, out map[int]string) map[int]string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			keyPathsByLine(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := n.Content[i].Value
			if prefix != "" {
				path = prefix + "." + path
			}
			out[n.Content[i].Line] = path
			keyPathsByLine(n.Content[i+1], path, out)
		}
	}
	return out
}

// WithDefaults fills zero fields and shares the brokers with every Kafka
// component that names none of its own.
func (c Config) WithDefaults() Config {
	if len(c.Input.Brokers) == 0 {
		c.Input.Brokers = c.Kafka.Brokers
	}
	if len(c.Output.Brokers) == 0 {
		c.Output.Brokers = c.Kafka.Brokers
	}
	c.Input = c.Input.WithDefaults()
	// The scorer maps type codes to weights by the input's type list.
	c.Scorer.EventTypes = c.Input.Limits.Types
	c.Scorer = c.Scorer.WithDefaults()
	// The ClickHouse sink writes type names, and a new output topic gets the
	// input's partition count.
	if c.ClickHouse.EventTypes == nil {
		c.ClickHouse.EventTypes = c.Input.Limits.Types
	}
	if c.Output.InputTopic == "" {
		c.Output.InputTopic = c.Input.Topic
	}
	c.ClickHouse = c.ClickHouse.WithDefaults()
	c.Output = c.Output.WithDefaults()
	c.Pipeline = c.Pipeline.WithDefaults()
	c.Checkpoint = c.Checkpoint.WithDefaults()
	c.Metrics = c.Metrics.WithDefaults()
	c.Kafka.SASL.Mechanism = c.Kafka.Auth().WithDefaults().SASL.Mechanism
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	return c
}

// Validate checks every section; the error names the field by its YAML path.
func (c Config) Validate() error {
	if len(c.Kafka.Brokers) == 0 && len(c.Input.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker address is required")
	}
	checks := []struct {
		section string
		err     error
	}{
		{"kafka", c.Kafka.Auth().Validate()},
		{"input", c.Input.Validate()},
		{"scorer", c.Scorer.Validate()},
		{"clickhouse", c.ClickHouse.Validate()},
		{"output", c.Output.Validate()},
		{"pipeline", c.Pipeline.Validate()},
		{"checkpoint", c.Checkpoint.Validate()},
		{"log", c.Log.Validate()},
		{"metrics", c.Metrics.Validate()},
	}
	for _, ch := range checks {
		if ch.err != nil {
			return fmt.Errorf("%s.%w", ch.section, ch.err)
		}
	}
	return nil
}

// Validate checks the log settings.
func (l LogConfig) Validate() error {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("level: must be debug, info, warn or error, got %q", l.Level)
	}
	switch l.Format {
	case "json", "console", "auto":
	default:
		return fmt.Errorf("format: must be json, console or auto, got %q", l.Format)
	}
	return nil
}
