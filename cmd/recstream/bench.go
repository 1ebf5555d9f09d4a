package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/benchmark"
	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
)

// benchOptions are the knobs of `recstream bench`.
type benchOptions struct {
	cfg        benchmark.Config
	markdown   string
	jsonOut    string
	plot       string
	logLevel   string
	failOnMiss bool
}

func newBenchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure every stage against its ceiling, side by side, in one run",
		Long: `bench measures recstream stage by stage on one data set, generated once and
produced once to an in-process Kafka broker (data under --data-dir, wiped
first), with a local ClickHouse server, as the demo runs them:

  ceilings   raw produce and consume of the input topic with no decoding
             (kafka-go Writer, group Reader, Conn.ReadBatch; franz-go), raw
             ONNX Runtime session.Run on the scorer's shapes, a raw
             clickhouse-go insert of the rows the sink writes, a raw
             produce of the records the Kafka output sink writes;
  stages     the consumer (decode + Arrow batches), the scorer (and a plain
             Go loop for reference), the ClickHouse and Kafka output sinks;
  pipeline   the whole pipeline as 'recstream run' builds it: its maximum
             throughput on the pre-filled topic, then its event-to-
             recommendation latency (p50/p95/p99) with events produced live
             at 50% and at 100% of that maximum;
  memory     bytes of scorer state per user, peak memory per stage.

Every figure is the median of --repeats runs with the min and max beside it.
It prints a Markdown table (each stage's ratio to its ceiling) and the goals
with PASS or MISS and what limits a stage that misses:

  whole pipeline >= 80% of the raw consume ceiling, scoring on;
  scorer >= 50% of raw ONNX Runtime; ClickHouse sink >= 70% of a raw insert;
  p99 event-to-recommendation latency <= 250 ms at half the maximum rate.

A missed goal is reported, not an error (exit 0), unless --fail-on-miss.`,
		Example: `  recstream bench
  recstream bench --events 500000 --repeats 5 --markdown bench.md --json bench.json --plot bench.png
  make bench BENCH_ARGS="--events 50000 --repeats 1"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	d := benchmark.Config{}.WithDefaults()
	f.StringVar(&o.cfg.DataDir, "data-dir", d.DataDir, "directory for the broker's log and ClickHouse's data (wiped first)")
	f.IntVar(&o.cfg.Events, "events", d.Events, "input records generated and produced once")
	f.IntVar(&o.cfg.Users, "users", d.Users, "distinct users of the synthetic clickstream")
	f.IntVar(&o.cfg.Items, "items", d.Items, "items of the clickstream and of the model")
	f.IntVar(&o.cfg.Dim, "dim", d.Dim, "width of the model's user state and item embeddings")
	f.IntVar(&o.cfg.Partitions, "partitions", d.Partitions, "partitions of the input topic")
	f.IntVar(&o.cfg.Repeats, "repeats", d.Repeats, "measurements of each figure (median, min and max are reported)")
	f.Uint64Var(&o.cfg.Seed, "seed", d.Seed, "seed of the clickstream and the model")
	f.DurationVar(&o.cfg.LiveDuration, "live-duration", d.LiveDuration, "how long events are produced live for each latency measurement")
	f.IntSliceVar(&o.cfg.SessionBatches, "session-batches", d.SessionBatches, "users per raw ONNX Runtime run measured (the first is the scorer's ceiling)")
	f.DurationVar(&o.cfg.RunTime, "run-time", d.RunTime, "how long each raw ONNX Runtime measurement runs")
	f.IntVar(&o.cfg.StateUsers, "state-users", d.StateUsers, "users stored to measure the bytes of state per user")
	f.IntVar(&o.cfg.SinkBatches, "sink-batches", d.SinkBatches, "batches (of the consumer's, with their recommendations) the sink stages write per turn")
	f.StringVar(&o.cfg.ProfileDir, "pprof", "", "write a Go CPU profile of each stage, and the allocation profile at its end, into this directory (go tool pprof)")
	f.StringVar(&o.markdown, "markdown", "", "also write the Markdown report to this file")
	f.StringVar(&o.jsonOut, "json", "", "write the report as JSON to this file")
	f.StringVar(&o.plot, "plot", "", "draw throughput per stage and latency percentiles into this PNG file")
	f.StringVar(&o.logLevel, "log-level", "error", "log level of the components while they are measured")
	f.BoolVar(&o.failOnMiss, "fail-on-miss", false, "exit 1 when a goal is missed")
	return cmd
}

// errGoalsMissed is returned with --fail-on-miss when a goal is missed.
var errGoalsMissed = errors.New("bench: a performance goal was missed (see the report)")

func runBench(ctx context.Context, o benchOptions, out, progress io.Writer) error {
	if err := o.cfg.Validate(); err != nil {
		return usageError{err}
	}
	log, err := newLogger(config.LogConfig{Level: o.logLevel, Format: "console"})
	if err != nil {
		return usageError{err}
	}
	defer log.Sync() //nolint:errcheck
	for _, path := range []string{o.markdown, o.jsonOut, o.plot} {
		if path == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create directory for %s: %w", path, err)
		}
	}
	start := time.Now()
	rep, err := benchmark.Run(ctx, o.cfg, benchmark.Env{
		NewPipeline: func(ctx context.Context, s benchmark.PipelineSetup) (benchmark.Pipeline, error) {
			return newBenchPipeline(ctx, s, log)
		},
		Log: log,
		Progress: func(line string) {
			fmt.Fprintf(progress, "%5.0fs %s\n", time.Since(start).Seconds(), line)
		},
	})
	if err != nil {
		return err
	}
	if err := rep.WriteMarkdown(out); err != nil {
		return err
	}
	if o.markdown != "" {
		if err := rep.WriteMarkdownFile(o.markdown); err != nil {
			return err
		}
	}
	if o.jsonOut != "" {
		if err := rep.WriteJSON(o.jsonOut); err != nil {
			return err
		}
	}
	if o.plot != "" {
		if err := rep.WritePlot(o.plot); err != nil {
			return err
		}
	}
	if o.failOnMiss && !rep.Passed() {
		return errGoalsMissed
	}
	return nil
}

// benchPipeline is the whole pipeline as buildPipeline wires it for `run`,
// pointed at the benchmark's broker, topics and ClickHouse server.
type benchPipeline struct {
	c *components
}

func newBenchPipeline(ctx context.Context, s benchmark.PipelineSetup, log *zap.Logger) (*benchPipeline, error) {
	cfg := config.Config{Kafka: config.KafkaConfig{Brokers: s.Brokers}}
	cfg.Input.Topic = s.InputTopic
	cfg.Input.GroupID = s.Group
	cfg.Input.DeadLetterTopic = s.DeadLetterTopic
	cfg.Scorer.ModelDir = s.ModelDir
	cfg.ClickHouse.Addr = []string{s.ClickHouseAddr}
	cfg.ClickHouse.Database = s.Database
	cfg.Output.Topic = s.OutputTopic
	cfg.Output.Partitions = s.Partitions
	cfg.Log = config.LogConfig{Level: "error", Format: "console"}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench pipeline configuration: %w", err)
	}
	c, err := buildPipeline(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return &benchPipeline{c: c}, nil
}

func (p *benchPipeline) Run(ctx context.Context) error { return p.c.pipeline.Run(ctx) }
func (p *benchPipeline) Stats() *pipeline.Stats        { return p.c.pipeline.Stats() }
func (p *benchPipeline) Partitions() int               { return len(p.c.consumer.Stats().Partitions) }
func (p *benchPipeline) Close() error                  { return p.c.Close() }
