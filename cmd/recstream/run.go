package main

import (
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/recstream/recstream/internal/config"
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
'recstream config env'.`,
		Example: `  recstream run --config configs/single-node.yaml
  RECSTREAM_KAFKA_BROKERS=kafka-1:9092,kafka-2:9092 recstream run --config configs/production.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath, os.Environ())
			if err != nil {
				return usageError{err}
			}
			log, err := newLogger(cfg.Log)
			if err != nil {
				return usageError{err}
			}
			defer log.Sync() //nolint:errcheck // nothing useful to do on a failed flush of stderr
			ctx := cmd.Context()
			c, err := buildPipeline(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer c.Close()
			log.Info("pipeline running", zap.Strings("brokers", cfg.Input.Brokers), zap.String("topic", cfg.Input.Topic))
			return c.pipeline.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "YAML configuration file (environment variables override it)")
	return cmd
}
