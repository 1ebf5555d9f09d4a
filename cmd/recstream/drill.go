package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/drills"
)

// drillOptions are the flags of `recstream drill` that are not fields of
// drills.Config.
type drillOptions struct {
	scenarios string
	jsonPath  string
	report    string
	timeline  string
	logLevel  string
	// seeds, when set, runs the drill once per seed (drills.ParseSeeds).
	seeds string
}

func newDrillCommand() *cobra.Command {
	var (
		o   drillOptions
		cfg drills.Config
	)
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Run disaster-recovery drills against a live pipeline on real Kafka and ClickHouse",
		Long: `drill runs named fault scenarios against a live pipeline and checks that
recstream's guarantees hold through each of them. It starts a real Apache
Kafka cluster of three brokers (replication factor 3, min.insync.replicas 2),
a real ClickHouse server, trains the built-in model, and runs the pipeline as
a child process ('recstream run') with checkpoints on. It first runs the
input once with no fault (the reference), then each scenario on its own
topics, consumer group and ClickHouse database with the same input:

  kill9               kill -9 of the pipeline at --kills random points (seeded)
  broker-loss         one broker of three killed for good (runs last)
  broker-restart      one broker stopped gracefully and started again
  clickhouse-outage   ClickHouse killed for --outage, then restarted
  poison-burst        a burst of malformed and hostile records mid-stream
  corrupt-checkpoint  the newest checkpoint corrupted, then kill -9 and restart
  model-rollback      model v2 activated mid-stream, then rolled back to v1

With --seeds (for example --seeds 1-20) it runs the whole drill once per
seed, each on a fresh cluster, and reports every run and each scenario's
worst one: a guarantee holds only if it holds in every run. --contention N
keeps N cores busy beside the pipeline throughout, as a loaded machine would.

For each scenario it reports events lost (must be 0), final recommendations
that differ from the reference in ClickHouse FINAL or the compacted output
topic (must be 0), duplicates the idempotent sinks absorbed, and the RTO:
the time from each fault to the first output record after the outage it
caused. See docs/runbook.md for how to read the report.

Exit codes: 0 every guarantee held; 1 a guarantee broke (the broken ones are
listed) or the drill could not run; 2 bad usage. Needs 'make setup' (Java
and Apache Kafka's jars, ClickHouse, ONNX Runtime).`,
		Example: `  recstream drill --scenarios all --seed 1 --report drill.md --json drill.json --timeline drill.png
  recstream drill --scenarios kill9,clickhouse-outage --kills 5 --outage 10s
  recstream drill --scenarios kill9 --seeds 1-20 --contention 1 --report kill9-seeds.md
  make drill`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Scenarios = splitList(o.scenarios)
			return runDrill(cmd.Context(), cfg, o, commandLine(cmd), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenarios, "scenarios", "all", "comma-separated scenarios to run, or all: "+strings.Join(drills.AllScenarios(), ","))
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the input, the model and every random choice (kill points)")
	f.StringVar(&o.seeds, "seeds", "", "run the drill once per seed and report the worst run, e.g. 1-20 or 3,7,11 (instead of --seed)")
	f.IntVar(&cfg.Contention, "contention", 0, "cores to keep busy beside the pipeline for the whole drill (CPU contention)")
	f.StringVar(&o.jsonPath, "json", "", "write the report as JSON to this file")
	f.StringVar(&o.report, "report", "", "write the report as Markdown to this file")
	f.StringVar(&o.timeline, "timeline", "", "draw the scenarios' timelines into this PNG file")
	f.IntVar(&cfg.Events, "events", drills.DefaultEvents, "input events of each scenario")
	f.StringVar(&cfg.WorkDir, "work-dir", ".run/drill/work", "directory of the drill's cluster, server, models and pipeline logs (its subdirectories are recreated)")
	f.IntVar(&cfg.Kills, "kills", drills.DefaultKills, "kill -9 count of the kill9 scenario")
	f.DurationVar(&cfg.Outage, "outage", drills.DefaultOutage, "how long clickhouse-outage keeps ClickHouse down and broker-restart its broker")
	f.IntVar(&cfg.Partitions, "partitions", drills.DefaultPartitions, "partitions of each input topic")
	f.DurationVar(&cfg.SessionTimeout, "session-timeout", drills.DefaultSessionTimeout, "the pipeline's consumer-group session timeout (a restart after kill -9 waits for it)")
	f.IntVar(&cfg.BatchRows, "batch-rows", drills.DefaultBatchRows, "the pipeline's input.batch.max_rows")
	f.StringVar(&cfg.Binary, "binary", "", "the recstream executable to run as the pipeline (default: this one)")
	f.StringVar(&o.logLevel, "log-level", "info", "level of the drill's own log (work-dir/drill.log)")
	return cmd
}

// commandLine renders the command as it was given, for the report.
func commandLine(cmd *cobra.Command) string {
	parts := []string{"recstream", cmd.Name()}
	cmd.Flags().Visit(func(f *pflag.Flag) { parts = append(parts, "--"+f.Name, f.Value.String()) })
	return strings.Join(parts, " ")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runDrill runs the drill, writes the report files, prints the summary
// table to out, and fails when a guarantee broke.
func runDrill(ctx context.Context, cfg drills.Config, o drillOptions, command string, out io.Writer) error {
	if cfg.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the recstream executable: %w", err)
		}
		cfg.Binary = self
	}
	// Settings and report files are checked before anything starts.
	if err := cfg.WithDefaults().Validate(); err != nil {
		return usageError{fmt.Errorf("drill: %w", err)}
	}
	for _, p := range []string{o.jsonPath, o.report, o.timeline} {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return usageError{fmt.Errorf("report file %s: %w", p, err)}
		}
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return usageError{fmt.Errorf("--work-dir: %w", err)}
	}
	log, err := fileLogger(filepath.Join(cfg.WorkDir, "drill.log"), o.logLevel)
	if err != nil {
		return usageError{err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do on a failed flush
	show := newDrillProgress(os.Stderr)
	if o.seeds != "" {
		seeds, err := drills.ParseSeeds(o.seeds)
		if err != nil {
			return usageError{fmt.Errorf("--%w", err)}
		}
		sw, err := drills.RunSweep(ctx, cfg, seeds, log, show.observe)
		show.done()
		if err != nil {
			return fmt.Errorf("drill: %w", err)
		}
		sw.Command = command
		return writeSweep(sw, o, out)
	}
	r, err := drills.New(cfg, log, show.observe)
	if err != nil {
		return usageError{err}
	}
	rep, err := r.Run(ctx)
	show.done()
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	rep.Command = command
	if o.jsonPath != "" {
		if err := drills.WriteFile(o.jsonPath, rep.WriteJSON); err != nil {
			return err
		}
	}
	if o.report != "" {
		if err := drills.WriteFile(o.report, rep.WriteMarkdown); err != nil {
			return err
		}
	}
	if o.timeline != "" {
		if err := drills.WriteTimeline(o.timeline, rep); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	if err := rep.Table(out); err != nil {
		return err
	}
	for _, p := range []string{o.report, o.jsonPath, o.timeline} {
		if p != "" {
			fmt.Fprintf(out, "wrote %s\n", p)
		}
	}
	if !rep.Passed {
		return fmt.Errorf("%d guarantees broken:\n  %s", len(rep.Broken), strings.Join(rep.Broken, "\n  "))
	}
	fmt.Fprintf(out, "every guarantee held in %d scenarios (%s)\n", len(rep.Scenarios),
		(time.Duration(rep.Seconds * float64(time.Second))).Round(time.Second))
	return nil
}

// writeSweep writes a sweep's report files (the timeline is the worst
// run's), prints its worst-run table to out, and fails when a guarantee
// broke in any run.
func writeSweep(sw *drills.Sweep, o drillOptions, out io.Writer) error {
	if o.jsonPath != "" {
		if err := drills.WriteFile(o.jsonPath, sw.WriteJSON); err != nil {
			return err
		}
	}
	if o.report != "" {
		if err := drills.WriteFile(o.report, sw.WriteMarkdown); err != nil {
			return err
		}
	}
	if worst := sw.WorstReport(); o.timeline != "" && worst != nil {
		if err := drills.WriteTimeline(o.timeline, worst); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	if err := sw.Table(out); err != nil {
		return err
	}
	for _, p := range []string{o.report, o.jsonPath, o.timeline} {
		if p != "" {
			fmt.Fprintf(out, "wrote %s\n", p)
		}
	}
	if !sw.Passed {
		return fmt.Errorf("%d guarantees broken over %d seeds:\n  %s", len(sw.Broken), len(sw.Seeds), strings.Join(sw.Broken, "\n  "))
	}
	fmt.Fprintf(out, "every guarantee held in every run over %d seeds (%s)\n", len(sw.Seeds),
		(time.Duration(sw.Seconds * float64(time.Second))).Round(time.Second))
	return nil
}

// fileLogger logs JSON lines to path: the drill's own components (the
// brokers, the server) log there, so that the terminal shows progress only.
func fileLogger(path, level string) (*zap.Logger, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("drill log: %w", err)
	}
	log, err := buildLogger(config.LogConfig{Level: level, Format: "json"}, f, false, nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return log, nil
}

// drillProgress shows a drill's steps: one line per step, and a progress
// display while a scenario's input is being committed.
type drillProgress struct {
	w    io.Writer
	mu   sync.Mutex
	bar  *progress
	name string
}

func newDrillProgress(w io.Writer) *drillProgress { return &drillProgress{w: w} }

func (p *drillProgress) observe(e drills.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Total > 0 {
		if p.bar == nil || p.name != e.Scenario {
			p.closeBar()
			p.bar, p.name = newProgress(e.Scenario+" committed", e.Total), e.Scenario
		}
		p.bar.Set(e.Done, e.Total)
		return
	}
	p.closeBar()
	fmt.Fprintf(p.w, "%-18s %-9s %s\n", e.Scenario, e.Phase, e.Detail)
}

func (p *drillProgress) closeBar() {
	if p.bar != nil {
		p.bar.Done()
		p.bar = nil
	}
}

func (p *drillProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeBar()
}
