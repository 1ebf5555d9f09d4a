package main

import (
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

func newRunCommand() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline against the configured Kafka and ClickHouse",
		Long: `run consumes the input topic, scores every batch, writes recommendations to
ClickHouse and the output topic, and commits input offsets once both sinks
acknowledged the batch. SIGTERM or SIGINT stops it gracefully: the in-flight
batch is written and committed, then it exits 0.

Every configuration field can be overridden from the environment, see
'recstream config env'. Secrets (passwords, key passphrases) can also come
from files (clickhouse.password_file, kafka.sasl.password_file,
kafka.tls.key_password_file) and are never logged.

With metrics.listen set, an HTTP endpoint serves Prometheus metrics on
/metrics, liveness on /healthz and readiness on /readyz (not ready while
restoring a checkpoint, before partitions are assigned, or while a sink is
being retried).`,
		Example: `  recstream run --config configs/single-node.yaml
  RECSTREAM_KAFKA_BROKERS=kafka-1:9092,kafka-2:9092 recstream run --config configs/production.yaml
  RECSTREAM_METRICS_LISTEN=127.0.0.1:9464 recstream run --config configs/single-node.yaml
  curl -s 127.0.0.1:9464/readyz   # from another terminal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath, os.Environ())
			if err != nil {
				return usageError{err}
			}
			log, err := newLogger(cfg.Log, config.SecretValues(cfg)...)
			if err != nil {
				return usageError{err}
			}
			defer log.Sync() //nolint:errcheck // nothing useful to do on a failed flush of stderr
			ctx := cmd.Context()
			obs, c, err := buildObservedPipeline(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer obs.Close()
			defer c.Close()
			log.Info("pipeline running", zap.Strings("brokers", cfg.Input.Brokers), zap.String("topic", cfg.Input.Topic),
				zap.String("metrics", obs.addr()))
			return obs.runPipeline(ctx, c)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "YAML configuration file (environment variables override it)")
	return cmd
}
