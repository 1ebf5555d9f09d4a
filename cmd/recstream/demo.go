package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/demo"
	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/scorers"
)

// demoOptions are the knobs of `recstream demo`.
type demoOptions struct {
	dataDir        string
	seed           uint64
	users          int
	items          int
	history        int
	events         int
	rate           float64
	partitions     int
	summaryJSON    string
	measureCeiling bool
	drainTimeout   time.Duration
	logLevel       string
	metricsListen  string
	recommender    string
}

func newDemoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on its embedded default and print a summary",
		Long: `demo runs recstream end to end on one machine with nothing to set up but the
ClickHouse server and ONNX Runtime library that 'make setup' installs:

  1. starts a local ClickHouse server and an in-process Kafka broker, both with
     their data under --data-dir (wiped at the start of each demo);
  2. generates a synthetic history and trains the built-in model on it;
  3. produces a live synthetic clickstream (with a few malformed events) at
     --rate events/s while the pipeline consumes, scores and writes it;
  4. waits for the pipeline to catch up, stops it gracefully, and prints a
     summary: events in, dead letters by reason, users refreshed, rows in each
     sink, example users with their top items, throughput and latency.`,
		Example: `  recstream demo
  recstream demo --events 500000 --rate 0 --summary-json summary.json
  make demo ARGS="--rate 50000 --events 1000000"
  recstream demo --rate 2000 --events 600000 --metrics-listen 127.0.0.1:9464   # watch it in Prometheus/Grafana`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", ".run/demo", "directory for the broker's log, ClickHouse data and the model (wiped first)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the synthetic clickstream")
	f.IntVar(&o.users, "users", 5000, "distinct users")
	f.IntVar(&o.items, "items", 10000, "distinct items")
	f.IntVar(&o.history, "history", 200000, "events of history the model is trained on before the live stream")
	f.IntVar(&o.events, "events", 200000, "live events to produce")
	f.Float64Var(&o.rate, "rate", 20000, "live events per second (0: as fast as possible)")
	f.IntVar(&o.partitions, "partitions", 8, "partitions of the input topic")
	f.StringVar(&o.summaryJSON, "summary-json", "", "also write the summary as JSON to this file")
	f.BoolVar(&o.measureCeiling, "measure-ceiling", true, "after the run, measure the raw group-consume rate of the input topic")
	f.DurationVar(&o.drainTimeout, "timeout", 5*time.Minute, "give up waiting for the pipeline to catch up after this long")
	f.StringVar(&o.logLevel, "log-level", "warn", "log level of the pipeline during the demo")
	f.StringVar(&o.recommender, "recommender", scorers.Config{}.WithDefaults().Recommender,
		"what fills the records: retrieval (the streaming two-stage recommender) or model (the trained model over the whole catalogue)")
	f.StringVar(&o.metricsListen, "metrics-listen", "", "serve /metrics, /healthz and /readyz on this host:port while the demo runs (for example 127.0.0.1:9464)")
	return cmd
}

func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	level := o.logLevel
	log, err := newLogger(config.LogConfig{Level: level, Format: "console"})
	if err != nil {
		return usageError{err}
	}
	defer log.Sync() //nolint:errcheck

	if err := os.RemoveAll(o.dataDir); err != nil {
		return fmt.Errorf("clear demo data dir %s: %w", o.dataDir, err)
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "• "+format+"\n", args...) }

	step("starting ClickHouse server (data in %s)", filepath.Join(o.dataDir, "clickhouse"))
	ch, err := embedded.StartClickHouse(ctx, filepath.Join(o.dataDir, "clickhouse"), log.Named("clickhouse-server"))
	if err != nil {
		return err
	}
	defer ch.Stop()

	const inputTopic, dlqTopic = "clickstream.events", "clickstream.dlq"
	step("starting in-process Kafka broker (log in %s)", filepath.Join(o.dataDir, "kafka"))
	broker, err := embedded.StartKafka(embedded.KafkaConfig{
		DataDir:    filepath.Join(o.dataDir, "kafka"),
		Partitions: o.partitions,
		Topics:     []string{inputTopic, dlqTopic},
	})
	if err != nil {
		return err
	}
	defer broker.Close()

	gen := generator.New(generator.Config{Seed: o.seed, Users: o.users, Items: o.items, Start: time.Now().Add(-24 * time.Hour)})
	modelDir := filepath.Join(o.dataDir, "models", "v1")
	step("training the built-in model on %d events of history", o.history)
	_, err = trainDemoModel(ctx, gen, o.history, modelDir, out)
	if err != nil {
		return err
	}

	cfg := config.Config{
		Kafka: config.KafkaConfig{Brokers: broker.Addrs()},
	}
	cfg.Input.Topic = inputTopic
	cfg.Input.DeadLetterTopic = dlqTopic
	cfg.Scorer.ModelDir = modelDir
	cfg.Scorer.Recommender = o.recommender
	cfg.ClickHouse.Addr = []string{ch.Addr()}
	cfg.Output.Partitions = o.partitions
	cfg.Log = config.LogConfig{Level: level, Format: "console"}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	cfg.Metrics.Listen = o.metricsListen
	obs, c, err := buildObservedPipeline(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer obs.Close()
	defer c.Close()
	if addr := obs.addr(); addr != "" {
		step("metrics on http://%s/metrics, probes on /healthz and /readyz", addr)
	}

	runCtx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	runErr := make(chan error, 1)
	go func() { runErr <- obs.runPipeline(runCtx, c) }()

	rateText := "as fast as possible"
	if o.rate > 0 {
		rateText = fmt.Sprintf("%.0f events/s", o.rate)
	}
	step("producing %d live events, %s, while the pipeline runs", o.events, rateText)
	bar := newProgress("produce", o.events)
	kinds, err := generator.Produce(ctx, generator.ProduceConfig{
		Brokers: broker.Addrs(), Topic: inputTopic, Rate: o.rate,
		Progress: func(done int) { bar.Set(done, 0) },
	}, gen, o.events)
	bar.Done()
	if err != nil {
		return err
	}

	step("waiting for the pipeline to catch up")
	if err := waitCaughtUp(ctx, c.pipeline.Stats(), uint64(o.events), o.drainTimeout, runErr); err != nil {
		return err
	}
	stopPipeline()
	if err := <-runErr; err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}

	summary, err := demo.Collect(ctx, demo.Sources{
		Stats: c.pipeline.Stats().Snapshot(), Produced: o.events, Kinds: kinds,
		ClickHouseAddr: ch.Addr(), Database: cfg.ClickHouse.Database,
		Brokers: broker.Addrs(), OutputTopic: cfg.Output.Topic, DLQTopic: dlqTopic, InputTopic: inputTopic,
		Gen: gen, ModelVersion: c.scorer.ModelVersion(), MeasureCeiling: o.measureCeiling,
	})
	if err != nil {
		return err
	}
	demo.Print(out, summary)
	if o.summaryJSON != "" {
		raw, _ := json.MarshalIndent(summary, "", "  ")
		if err := os.WriteFile(o.summaryJSON, append(raw, '\n'), 0o644); err != nil {
			return fmt.Errorf("write summary %s: %w", o.summaryJSON, err)
		}
	}
	if summary.EventsValid+summary.EventsDLQ != uint64(summary.EventsProduced) {
		return fmt.Errorf("accounting broken: %d valid + %d dead-lettered != %d produced",
			summary.EventsValid, summary.EventsDLQ, summary.EventsProduced)
	}
	return nil
}

// waitCaughtUp returns once the pipeline has committed every produced record.
func waitCaughtUp(ctx context.Context, stats *pipeline.Stats, produced uint64, timeout time.Duration, runErr <-chan error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for stats.Records.Load() < produced {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runErr:
			return fmt.Errorf("pipeline stopped before catching up: %v", err)
		case <-deadline.C:
			return fmt.Errorf("pipeline processed %d of %d records within %s", stats.Records.Load(), produced, timeout)
		case <-tick.C:
		}
	}
	return nil
}
