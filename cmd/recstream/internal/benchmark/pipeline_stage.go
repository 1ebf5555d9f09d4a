package benchmark

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
)

// PipelineSetup says what a pipeline built for the benchmark reads and
// writes. Everything else (batch bounds, scorer, sink settings) is the
// caller's normal configuration.
type PipelineSetup struct {
	// Brokers are the in-process broker's addresses.
	Brokers []string
	// InputTopic is read from its start by consumer group Group (a fresh
	// group for every run); rejected records go to DeadLetterTopic.
	InputTopic      string
	DeadLetterTopic string
	Group           string
	// Partitions is the input topic's partition count.
	Partitions int
	// OutputTopic is the Kafka output sink's topic.
	OutputTopic string
	// ClickHouseAddr is the ClickHouse server's native address; Database
	// the database the sink writes into.
	ClickHouseAddr string
	Database       string
	// ModelDir is the model directory to score with.
	ModelDir string
}

// Pipeline is a whole pipeline built by a PipelineFactory.
type Pipeline interface {
	// Run processes batches until ctx is cancelled (a soft stop that
	// drains the batches in flight) or a fatal error.
	Run(ctx context.Context) error
	// Stats are the pipeline's live statistics.
	Stats() *pipeline.Stats
	// Partitions is the number of input partitions the consumer owns now
	// (0 before it has joined its group).
	Partitions() int
	// Close releases every component.
	Close() error
}

// PipelineFactory builds the whole pipeline exactly as `recstream run`
// does, reading and writing what setup says.
type PipelineFactory func(ctx context.Context, setup PipelineSetup) (Pipeline, error)

// pipelineRun is what one run of the whole pipeline measured.
type pipelineRun struct {
	snap     pipeline.Snapshot
	cores    coreUse
	produced int     // live runs: records produced
	achieved float64 // live runs: records per second produced
}

// runPipeline builds a pipeline for setup, runs it until it has committed
// want records (or, when live is set, until it has joined its group, live
// has produced, and every record produced is committed), stops it
// gracefully and returns its statistics.
func (r *run) runPipeline(ctx context.Context, setup PipelineSetup, want int, live func(ctx context.Context) (int, float64, error)) (pipelineRun, error) {
	var out pipelineRun
	// Each run writes a database of its own, dropped afterwards, and starts
	// once ClickHouse has finished merging what came before: otherwise the
	// merges of earlier runs' inserts weigh on the later runs.
	r.pipelineRuns++
	setup.Database = fmt.Sprintf("%s_%d", setup.Database, r.pipelineRuns)
	defer r.dropDatabase(ctx, setup.Database)
	r.quiesce(ctx)
	p, err := r.env.NewPipeline(ctx, setup)
	if err != nil {
		return out, fmt.Errorf("build pipeline: %w", err)
	}
	defer p.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(runCtx) }()
	u := r.startUsage()

	if live != nil {
		if err := waitFor(ctx, time.Minute, runErr, func() bool { return p.Partitions() >= setup.Partitions }); err != nil {
			return out, fmt.Errorf("wait for the pipeline to own %d partitions (owns %d): %w", setup.Partitions, p.Partitions(), err)
		}
		if want, out.achieved, err = live(ctx); err != nil {
			return out, err
		}
		out.produced = want
	}
	stats := p.Stats()
	if err := waitFor(ctx, r.timeout(want), runErr, func() bool { return stats.Records.Load() >= uint64(want) }); err != nil {
		return out, fmt.Errorf("pipeline committed %d of %d records: %w", stats.Records.Load(), want, err)
	}
	out.cores = u.read()
	stop()
	if err := <-runErr; err != nil {
		return out, fmt.Errorf("pipeline: %w", err)
	}
	out.snap = stats.Snapshot()
	return out, nil
}

// waitFor polls done every 20 ms until it holds, the pipeline stops, ctx
// ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, runErr <-chan error, done func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runErr:
			return fmt.Errorf("pipeline stopped: %v", err)
		case <-deadline.C:
			return fmt.Errorf("gave up after %s", timeout)
		case <-tick.C:
		}
	}
	return nil
}

// setup returns the pipeline setup reading topic with a fresh group.
func (r *run) setup(topic, group string) PipelineSetup {
	return PipelineSetup{Brokers: r.brokers(), InputTopic: topic, DeadLetterTopic: DeadLetterTopic, Group: group,
		Partitions: r.cfg.Partitions, OutputTopic: "bench.recs.pipeline", ClickHouseAddr: r.ch.Addr(),
		Database: pipelineDatabase, ModelDir: r.data.modelDir}
}

// measurePipeline measures the whole pipeline's maximum throughput on the
// pre-filled input topic, then its latency with events produced live at
// 50% and at 100% of that maximum.
func (r *run) measurePipeline(ctx context.Context) error {
	want := len(r.data.records)
	var score, write, batches, busy []float64
	var cores coreSamples
	sinkShare := map[string][]float64{}
	fig, err := measure(r.cfg.Repeats, func(rep int) (float64, error) {
		res, err := r.runPipeline(ctx, r.setup(InputTopic, fmt.Sprintf("bench-pipeline-max-%d", rep)), want, nil)
		if err != nil {
			return 0, err
		}
		s := res.snap
		if s.Busy <= 0 {
			return 0, errors.New("pipeline reported no busy time")
		}
		cores.add(res.cores)
		busy = append(busy, s.Busy.Seconds())
		score = append(score, s.ScoreSeconds/s.Busy.Seconds())
		write = append(write, s.WriteSeconds/s.Busy.Seconds())
		batches = append(batches, float64(s.Batches))
		for name, sec := range s.SinkSeconds {
			sinkShare[name] = append(sinkShare[name], sec/s.Busy.Seconds())
		}
		return float64(s.Records) / s.Busy.Seconds(), nil
	}, r.repeatProgress("whole pipeline, pre-filled topic (maximum throughput)", "events/s"))
	if err != nil {
		return fmt.Errorf("whole pipeline: %w", err)
	}
	r.report.addRow(cores.set(Row{ID: "pipeline.max", Stage: StagePipeline, Name: "whole pipeline (buildPipeline), scoring on, both sinks",
		Unit: "events/s", Value: fig,
		Note: fmt.Sprintf("%d records from a pre-filled topic; first fetch to last commit", want)}))
	if best := r.report.BestCeiling(StageConsume); best != nil {
		r.report.compare("pipeline.max", best.ID)
	}
	b := &r.report.Breakdown
	b.BusySeconds = NewFigure(busy).Median
	b.ScoreShare, b.WriteShare = NewFigure(score).Median, NewFigure(write).Median
	b.Batches = NewFigure(batches).Median
	if b.Batches > 0 {
		b.RecordsPerBatch = float64(want) / b.Batches
		b.BatchScoreMs = 1000 * b.ScoreShare * b.BusySeconds / b.Batches
		b.BatchWriteMs = 1000 * b.WriteShare * b.BusySeconds / b.Batches
	}
	b.SinkShare = map[string]float64{}
	for name, v := range sinkShare {
		b.SinkShare[name] = NewFigure(v).Median
	}

	for _, load := range []float64{0.5, 1} {
		if err := r.measureLatency(ctx, load, fig.Median*load); err != nil {
			return err
		}
	}
	return nil
}

// measureLatency runs the pipeline on a fresh topic while events are
// produced live at rate, and records the event-to-recommendation latency.
func (r *run) measureLatency(ctx context.Context, load, rate float64) error {
	msgs := messagesOf(r.data.records)
	row := LatencyRow{Load: load, Rate: rate, Events: int(rate * r.cfg.LiveDuration.Seconds())}
	var achieved, p50, p95, p99, maxMs, scoreMs, writeMs, perBatch []float64
	var cores coreSamples
	what := fmt.Sprintf("whole pipeline, live at %.0f%% of maximum (%.0f events/s for %s)", load*100, rate, r.cfg.LiveDuration)
	_, err := measure(r.cfg.Repeats, func(rep int) (float64, error) {
		topic := fmt.Sprintf("bench.live.%.0f.%d", load*100, rep)
		if err := r.createTopic(ctx, topic, r.cfg.Partitions); err != nil {
			return 0, err
		}
		defer r.deleteTopic(ctx, topic)
		res, err := r.runPipeline(ctx, r.setup(topic, "bench-pipeline-"+topic), 0, func(ctx context.Context) (int, float64, error) {
			return produceLive(ctx, r.brokers(), topic, msgs, rate, r.cfg.LiveDuration)
		})
		if err != nil {
			return 0, err
		}
		s := res.snap
		cores.add(res.cores)
		achieved = append(achieved, res.achieved)
		p50 = append(p50, ms(s.LatencyP50))
		p95 = append(p95, ms(s.LatencyP95))
		p99 = append(p99, ms(s.LatencyP99))
		maxMs = append(maxMs, ms(s.LatencyMax))
		if s.Batches > 0 {
			scoreMs = append(scoreMs, 1000*s.ScoreSeconds/float64(s.Batches))
			writeMs = append(writeMs, 1000*s.WriteSeconds/float64(s.Batches))
			perBatch = append(perBatch, float64(s.Records)/float64(s.Batches))
		}
		return ms(s.LatencyP99), nil
	}, r.repeatProgress(what+", p99", "ms"))
	if err != nil {
		return fmt.Errorf("latency at %.0f%% load: %w", load*100, err)
	}
	row.Achieved, row.P50, row.P95, row.P99, row.Max = NewFigure(achieved), NewFigure(p50), NewFigure(p95), NewFigure(p99), NewFigure(maxMs)
	row.BatchScoreMs, row.BatchWriteMs, row.BatchRecords = NewFigure(scoreMs), NewFigure(writeMs), NewFigure(perBatch)
	row.Cores, row.ClickHouseCores, row.OtherCores = NewFigure(cores.busy), NewFigure(cores.clickhouse), NewFigure(cores.others)
	r.report.Latency = append(r.report.Latency, row)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// liveTick is how often the live producer catches up with its schedule:
// short, so that records leave at an even pace rather than in bursts.
const liveTick = 2 * time.Millisecond

// produceLive produces msgs (cycling through them) at rate records per
// second for d, with franz-go; each record's timestamp (the log time the
// latency is measured from) is taken when it is handed to the client. It
// returns the records produced and the rate reached.
func produceLive(ctx context.Context, brokers []string, topic string, msgs []message, rate float64, d time.Duration) (int, float64, error) {
	total := int(rate * d.Seconds())
	if total <= 0 || len(msgs) == 0 {
		return 0, 0, fmt.Errorf("live produce: nothing to produce at %.0f records/s for %s", rate, d)
	}
	cl, err := newFranzProducer(brokers, topic, false)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	var (
		mu       sync.Mutex
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			firstErr = errors.Join(firstErr, err)
			mu.Unlock()
		}
	}
	tick := time.NewTicker(liveTick)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < total {
		due := min(total, int(rate*time.Since(start).Seconds())+1)
		for ; sent < due; sent++ {
			m := msgs[sent%len(msgs)]
			cl.Produce(ctx, &kgo.Record{Key: m.Key, Value: m.Value, Timestamp: time.Now()}, promise)
		}
		select {
		case <-ctx.Done():
			return sent, 0, ctx.Err()
		case <-tick.C:
		}
	}
	took := time.Since(start)
	if err := cl.Flush(ctx); err != nil {
		return sent, 0, fmt.Errorf("live produce: flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return sent, 0, fmt.Errorf("live produce to %s: %w", topic, firstErr)
	}
	return sent, float64(sent) / took.Seconds(), nil
}
