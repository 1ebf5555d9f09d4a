package config

import (
	"errors"
	"fmt"
	"os"
)

// LoadKafka reads only what a Kafka client needs from a configuration file
// (brokers, TLS, SASL), with the same environment overrides and secret
// files as Load, for commands such as generate that talk to Kafka without
// running the pipeline. Other sections are parsed (a typo is still an
// error) but not validated, so a producer's file needs no model directory.
// An empty path reads the environment alone.
func LoadKafka(path string, environ []string) (KafkaConfig, error) {
	var cfg Config
	where := "config"
	if path != "" {
		where = "config " + path
		raw, err := os.ReadFile(path)
		if err != nil {
			return KafkaConfig{}, fmt.Errorf("read config %s: %w", path, err)
		}
		if err := Parse(raw, &cfg); err != nil {
			return KafkaConfig{}, fmt.Errorf("%s: %w", where, err)
		}
	}
	if err := applyEnv(&cfg, EnvPrefix, environ); err != nil {
		return KafkaConfig{}, fmt.Errorf("config from environment: %w", err)
	}
	if err := resolveSecretFiles(&cfg); err != nil {
		return KafkaConfig{}, fmt.Errorf("%s: %w", where, err)
	}
	k := cfg.Kafka
	k.SASL.Mechanism = k.Auth().WithDefaults().SASL.Mechanism
	if len(k.Brokers) == 0 {
		return KafkaConfig{}, fmt.Errorf("%s: %w", where, errors.New("kafka.brokers: at least one broker address is required"))
	}
	if err := k.Auth().Validate(); err != nil {
		return KafkaConfig{}, fmt.Errorf("%s: kafka.%w", where, err)
	}
	return k, nil
}
