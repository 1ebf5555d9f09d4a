package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/rebuild"
	"github.com/recstream/recstream/sinks"
)

type replayOptions struct {
	configPath string
	fromOffset string
	fromTime   string
	sinks      string
	group      string
	rebuild    bool
	chunk      int
}

func newReplayCommand() *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Rebuild sinks or state by replaying the input, or ClickHouse from the output topic",
		Long: `replay re-reads the input topic from an offset or a timestamp with fresh user
state (no checkpoint) and writes the results into the chosen sinks. Outputs
are deterministic and versioned by input position, so rows and records the
sinks already hold are rewritten identically and collapse: a replay can be
interrupted and run again. It uses its own consumer group, so the live
pipeline's offsets do not move, and stops at the end offsets it found when it
started. Dead letters are not written again.

With --rebuild-clickhouse-from-output it does not score at all: it reads the
compacted output topic from its start and inserts every record into the
ClickHouse recommendations table, the fastest way to rebuild a lost
ClickHouse (the raw events table needs an input replay).

To rebuild exact state after losing checkpoints, replay from the start
(--from-offset earliest, the default): state depends on every event before.`,
		Example: `  # ClickHouse was lost: rebuild its tables from the whole retained input
  recstream replay --config prod.yaml --sinks clickhouse
  # rebuild only the recommendations table, from the output topic
  recstream replay --config prod.yaml --rebuild-clickhouse-from-output
  # rewrite everything from a point in time (state built from there on)
  recstream replay --config prod.yaml --from-time 2026-11-27T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.configPath, os.Environ())
			if err != nil {
				return usageError{err}
			}
			log, err := newLogger(cfg.Log)
			if err != nil {
				return usageError{err}
			}
			defer log.Sync() //nolint:errcheck
			if o.rebuild {
				return rebuildClickHouseFromOutput(cmd.Context(), cfg, o.chunk, log, cmd.OutOrStdout())
			}
			return replayInput(cmd.Context(), cfg, o, log, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.configPath, "config", "c", "", "YAML configuration file")
	f.StringVar(&o.fromOffset, "from-offset", "earliest", "start offset for every partition: earliest or a number")
	f.StringVar(&o.fromTime, "from-time", "", "start at the first record at or after this time (RFC 3339); overrides --from-offset")
	f.StringVar(&o.sinks, "sinks", "clickhouse,kafka", "sinks to write: clickhouse, kafka or both")
	f.StringVar(&o.group, "group", "", "consumer group of the replay (default: the configured group + .replay)")
	f.BoolVar(&o.rebuild, "rebuild-clickhouse-from-output", false, "rebuild the ClickHouse recommendations table from the output topic")
	f.IntVar(&o.chunk, "chunk", 50000, "rows per ClickHouse insert when rebuilding from the output topic")
	return cmd
}

// replayStart works out where each partition starts and where the replay
// ends (the end offsets now).
func replayStart(ctx context.Context, adm *kadm.Client, topic string, o replayOptions) (start, end map[int]int64, err error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var starts kadm.ListedOffsets
	switch {
	case o.fromTime != "":
		at, perr := time.Parse(time.RFC3339, o.fromTime)
		if perr != nil {
			return nil, nil, usageError{fmt.Errorf("--from-time: %w", perr)}
		}
		starts, err = adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic)
	case o.fromOffset == "earliest":
		starts, err = adm.ListStartOffsets(ctx, topic)
	default:
		var n int64
		if _, perr := fmt.Sscanf(o.fromOffset, "%d", &n); perr != nil || n < 0 {
			return nil, nil, usageError{fmt.Errorf("--from-offset: want earliest or a number >= 0, got %q", o.fromOffset)}
		}
		first, lerr := adm.ListStartOffsets(ctx, topic)
		if lerr != nil {
			return nil, nil, lerr
		}
		starts = first
		for _, ps := range starts {
			for p, lo := range ps {
				lo.Offset = max(lo.Offset, n)
				ps[p] = lo
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	start, end = map[int]int64{}, map[int]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[int(o.Partition)] = o.Offset })
	starts.Each(func(o kadm.ListedOffset) {
		s := o.Offset
		if s < 0 || s > end[int(o.Partition)] { // no record after the time: nothing to replay there
			s = end[int(o.Partition)]
		}
		start[int(o.Partition)] = s
	})
	return start, end, nil
}

func replayInput(ctx context.Context, cfg config.Config, o replayOptions, log *zap.Logger, out io.Writer) error {
	opts := buildOptions{discardDeadLetters: true, freshState: true}
	for _, s := range strings.Split(o.sinks, ",") {
		switch strings.TrimSpace(s) {
		case "clickhouse", "kafka":
		default:
			return usageError{fmt.Errorf("--sinks: unknown sink %q (want clickhouse, kafka)", s)}
		}
	}
	opts.skipClickHouse = !strings.Contains(o.sinks, "clickhouse")
	opts.skipKafkaOutput = !strings.Contains(o.sinks, "kafka")
	if o.group != "" {
		cfg.Input.GroupID = o.group
	} else {
		cfg.Input.GroupID += ".replay"
	}

	cl, err := newKgoClient(cfg, cfg.Input.Brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	start, end, err := replayStart(ctx, kadm.NewClient(cl), cfg.Input.Topic, o)
	if err != nil {
		return err
	}
	opts.resumeFrom = start
	var total int64
	for p, e := range end {
		total += e - start[p]
	}
	fmt.Fprintf(out, "replaying %d records of %s into %s\n", total, cfg.Input.Topic, o.sinks)
	if total == 0 {
		return nil
	}
	c, err := buildPipelineWith(ctx, cfg, log, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.pipeline.Run(runCtx) }()

	bar := newProgress("replay", int(total))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		pos := c.pipeline.Stats().Snapshot().Positions
		var doneRecords int64
		finished := true
		for p, e := range end {
			at, ok := pos[int32(p)]
			if !ok {
				at = start[p]
			}
			doneRecords += min(at, e) - start[p]
			if at < e {
				finished = false
			}
		}
		bar.Set(int(doneRecords), 0)
		if finished {
			break
		}
		select {
		case err := <-done:
			bar.Done()
			if err == nil {
				err = errors.New("stopped before the end")
			}
			return fmt.Errorf("replay: %w", err)
		case <-tick.C:
		}
	}
	bar.Done()
	stop()
	if err := <-done; err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	st := c.pipeline.Stats().Snapshot()
	fmt.Fprintf(out, "replayed %d records: %d events applied, %d rejected (already in the dead-letter topic), %d recommendation rows rewritten\n",
		st.Records, st.EventsValid, st.DeadLetters, st.Refreshes)
	return nil
}

// rebuildClickHouseFromOutput copies the compacted output topic into the
// ClickHouse recommendations table.
func rebuildClickHouseFromOutput(ctx context.Context, cfg config.Config, chunk int, log *zap.Logger, out io.Writer) error {
	if chunk <= 0 {
		return usageError{fmt.Errorf("--chunk: must be > 0, got %d", chunk)}
	}
	chCfg, err := cfg.ClickHouse.Sink()
	if err != nil {
		return err
	}
	sink, err := sinks.NewClickHouseSink(ctx, chCfg, log.Named("clickhouse"))
	if err != nil {
		return fmt.Errorf("start clickhouse sink: %w", err)
	}
	defer sink.Close()
	cl, err := newKgoClient(cfg, cfg.Output.Brokers, kgo.ConsumeTopics(cfg.Output.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var bar *progress
	copied, err := rebuild.ClickHouseFromTopic(ctx, cl, cfg.Output.Topic, sink, chunk, func(done, total int) {
		if bar == nil {
			fmt.Fprintf(out, "rebuilding ClickHouse recommendations from %s (up to %d records)\n", cfg.Output.Topic, total)
			bar = newProgress("rebuild", total)
			return
		}
		bar.Set(done, 0)
	})
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "copied %d records into %s.recommendations (older versions collapse under FINAL)\n", copied, cfg.ClickHouse.Database)
	return nil
}
