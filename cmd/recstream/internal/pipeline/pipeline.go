// Package pipeline runs recstream's main loop: take a batch from the input,
// score it, write it to every sink, and only then commit its input offsets.
//
// Failures of a batch fall in three classes:
//   - a bad event: already routed to the dead-letter topic by the consumer;
//     the batch goes on without it;
//   - a sink (or the dead-letter topic) unavailable, errors.Is(err,
//     sinks.ErrUnavailable): the batch is retried with backoff and no new
//     batch is taken meanwhile, so consumption pauses and memory stays bounded;
//   - anything else (a scorer failure, a sink rejecting the data): Run stops
//     with the error and commits nothing of that batch; a restart re-reads it.
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/sinks"
)

// Source yields micro-batches of input and commits their positions.
type Source interface {
	// Next blocks until a batch is ready or ctx is done.
	Next(ctx context.Context) (*schemas.EventBatch, error)
	// Commit acknowledges every record before the given positions.
	Commit(ctx context.Context, positions []schemas.PartitionOffset) error
}

// Scorer turns a batch of events into recommendations for the users it touches.
type Scorer interface {
	Score(ctx context.Context, batch *schemas.EventBatch) (*schemas.RecommendationBatch, error)
}

// Sink stores a scored batch. Write returns only once the batch is durable
// there; it must be idempotent, since a batch is written again after a retry
// or a replay.
type Sink interface {
	Write(ctx context.Context, events *schemas.EventBatch, recs *schemas.RecommendationBatch) error
}

// DeadLetterSink stores rejected input records.
type DeadLetterSink interface {
	Write(ctx context.Context, sourceTopic string, letters []schemas.DeadLetter) error
}

// Checkpointer saves the scorer's state together with the input positions
// it reflects, so that a restart need not replay the whole input.
type Checkpointer interface {
	// Capture is called in the scoring goroutine right after a batch was
	// scored, with the positions after that batch for every partition seen
	// so far. It copies the state and returns the save to run once the
	// batch is committed, or nil when no checkpoint is due.
	Capture(positions map[int32]int64) PendingCheckpoint
}

// PendingCheckpoint is a captured state waiting for its batch's commit.
type PendingCheckpoint interface {
	Save(ctx context.Context) error
}

// NamedSink is a sink with the name used in logs and statistics.
type NamedSink struct {
	Name string
	Sink Sink
}

// Config tunes the loop. Zero fields take the defaults noted.
type Config struct {
	// RetryInitial is the first wait before retrying an unavailable sink
	// (default 100ms); waits double up to RetryMax (default 5s).
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// DrainTimeout bounds how long a stop waits for the in-flight batch to be
	// written and committed (default 30s). Past it the batch is abandoned
	// uncommitted, to be re-read after restart.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.RetryInitial = cmp.Or(c.RetryInitial, 100*time.Millisecond)
	c.RetryMax = cmp.Or(c.RetryMax, 5*time.Second)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 30*time.Second)
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.RetryInitial < 0:
		return fmt.Errorf("retry_initial: must be >= 0, got %s", c.RetryInitial)
	case c.RetryMax < c.RetryInitial:
		return fmt.Errorf("retry_max: must be >= retry_initial (%s), got %s", c.RetryInitial, c.RetryMax)
	case c.DrainTimeout < 0:
		return fmt.Errorf("drain_timeout: must be >= 0, got %s", c.DrainTimeout)
	}
	return nil
}

// Pipeline is the main loop. Build it with New and start it with Run.
type Pipeline struct {
	cfg    Config
	source Source
	scorer Scorer
	dlq    DeadLetterSink
	sinks  []NamedSink
	log    *zap.Logger
	stats  *Stats
	now    func() time.Time
	ckpt   Checkpointer
	// ckptFrom is where the scorer's state stood at start, per partition
	// (the offsets of the checkpoint it was restored from).
	ckptFrom map[int32]int64
	obs      Observer // nil: none
	// written holds, per partition, the position after the last batch
	// written (ckptFrom for partitions not written since start); only the
	// writing goroutine touches it. wroteAny says a batch was written.
	written  map[int32]int64
	wroteAny bool
}

// New wires a pipeline. dlq may be nil only if the source never yields
// dead letters.
func New(cfg Config, source Source, scorer Scorer, dlq DeadLetterSink, outputs []NamedSink, log *zap.Logger) *Pipeline {
	if log == nil {
		log = zap.NewNop()
	}
	names := make([]string, len(outputs))
	for i, s := range outputs {
		names[i] = s.Name
	}
	return &Pipeline{
		cfg:    cfg.WithDefaults(),
		source: source,
		scorer: scorer,
		dlq:    dlq,
		sinks:  outputs,
		log:    log,
		stats:  newStats(names),
		now:    time.Now,
	}
}

// SetCheckpointer makes the pipeline take checkpoints; call before Run.
// from is, per partition, the position the scorer's state starts at: the
// offsets of the checkpoint it was restored from, nil for none. Every
// checkpoint names those partitions too, at their newest position, and not
// only the partitions this process has read since it started: a checkpoint
// that left one out would hold that partition's users without saying where
// their state stands, and a restart from it would replay the partition from
// its start (or, once the log start moved, miss events).
func (p *Pipeline) SetCheckpointer(c Checkpointer, from map[int32]int64) {
	p.ckpt, p.ckptFrom = c, maps.Clone(from)
}

// Stats returns the live statistics of the pipeline.
func (p *Pipeline) Stats() *Stats { return p.stats }

// Run processes batches until ctx is cancelled or a fatal error occurs.
// Cancelling ctx is a soft stop: no new batch is taken, the batches in
// flight are written and committed within DrainTimeout, and Run returns nil.
//
// Scoring and writing overlap: while the sinks write batch n, batch n+1 is
// scored. At most two batches are in flight, so memory stays bounded when a
// sink stalls, and batches are written and committed strictly in order.
func (p *Pipeline) Run(ctx context.Context) error {
	p.stats.live.running.Store(true)
	defer p.stats.live.running.Store(false)
	// Work on taken batches continues past a soft stop, until the drain
	// deadline.
	work, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	stopWatch := context.AfterFunc(ctx, func() {
		timer := time.AfterFunc(p.cfg.DrainTimeout, abandon)
		context.AfterFunc(work, func() { timer.Stop() })
	})
	defer stopWatch()

	// reading ends with a soft stop, or at once when the loop gives up, so
	// that the scoring goroutine is never left waiting for input.
	reading, stopReading := context.WithCancel(ctx)
	defer stopReading()
	scored := make(chan scoredBatch, 1)
	go p.scoreLoop(reading, work, scored)

	for sb := range scored {
		if sb.err != nil {
			abandon()
			return sb.err
		}
		err := p.write(work, sb)
		sb.release()
		if err != nil {
			abandon()
			stopReading()
			// Let the scoring goroutine see the cancellation and exit.
			for rest := range scored {
				rest.release()
			}
			if ctx.Err() != nil {
				p.log.Warn("pipeline stopped: drain deadline passed, in-flight batch left uncommitted", zap.Error(err))
				return nil
			}
			return err
		}
	}
	p.log.Info("pipeline stopped: input drained, batches in flight written and committed")
	// Every scored batch is written now, so the state matches the positions
	// written: a last checkpoint spares the next start a replay.
	if p.ckpt != nil && p.wroteAny {
		if pending := p.ckpt.Capture(p.written); pending != nil {
			if err := pending.Save(work); err != nil {
				p.log.Warn("final checkpoint failed; the next start replays from the previous one", zap.Error(err))
			}
		}
	}
	return nil
}

// scoredBatch is a batch on its way from the scorer to the sinks, or the
// error that ended scoring.
type scoredBatch struct {
	batch  *schemas.EventBatch
	recs   *schemas.RecommendationBatch
	start  time.Time
	scored time.Time
	// checkpoint is the state after this batch, to save once it is committed.
	checkpoint PendingCheckpoint
	err        error
}

func (sb scoredBatch) release() {
	if sb.recs != nil {
		sb.recs.Release()
	}
	if sb.batch != nil {
		sb.batch.Release()
	}
}

// scoreLoop takes batches from the source and scores them in order, until
// reading stops (a soft stop, or the loop giving up) or work is abandoned.
// It closes out.
func (p *Pipeline) scoreLoop(ctx, work context.Context, out chan<- scoredBatch) {
	defer close(out)
	positions := maps.Clone(p.ckptFrom)
	if positions == nil {
		positions = map[int32]int64{}
	}
	for {
		batch, err := p.source.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && work.Err() == nil {
				out <- scoredBatch{err: fmt.Errorf("read next batch: %w", err)}
			}
			return
		}
		start := p.now()
		p.stats.live.scoringSince.Store(start.UnixNano())
		recs, err := p.scorer.Score(work, batch)
		p.stats.live.scoringSince.Store(0)
		if err != nil {
			batch.Release()
			out <- scoredBatch{err: fmt.Errorf("score batch of %d events: %w", batch.Events.NumRows(), err)}
			return
		}
		sb := scoredBatch{batch: batch, recs: recs, start: start, scored: p.now()}
		for _, pos := range batch.Commit {
			positions[int32(pos.Partition)] = pos.Offset
		}
		if p.ckpt != nil {
			sb.checkpoint = p.ckpt.Capture(positions)
		}
		select {
		case out <- sb:
		case <-work.Done():
			recs.Release()
			batch.Release()
			return
		}
	}
}

// write stores one scored batch in every sink and the dead-letter topic,
// then commits its input positions.
func (p *Pipeline) write(ctx context.Context, sb scoredBatch) error {
	batch, recs := sb.batch, sb.recs
	writeStart := p.now()
	var wg sync.WaitGroup
	errs := make([]error, len(p.sinks)+1)
	if len(batch.DeadLetters) > 0 {
		if p.dlq == nil {
			return fmt.Errorf("batch has %d dead letters and no dead-letter sink is configured", len(batch.DeadLetters))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := p.now()
			var attempts int
			errs[0] = p.retry(ctx, "dead_letters", func() error {
				attempts++
				return p.dlq.Write(ctx, batch.Topic, batch.DeadLetters)
			})
			if p.obs != nil {
				p.obs.SinkWritten("dead_letters", p.now().Sub(t0), attempts, errs[0])
			}
		}()
	}
	for i, s := range p.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := p.now()
			var attempts int
			errs[i+1] = p.retry(ctx, s.Name, func() error { attempts++; return s.Sink.Write(ctx, batch, recs) })
			took := p.now().Sub(t0)
			p.stats.recordSinkTime(s.Name, took)
			if p.obs != nil {
				p.obs.SinkWritten(s.Name, took, attempts, errs[i+1])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	written := p.now()

	// Offsets are committed only now that every sink holds the batch. A
	// failed commit loses nothing: a later commit covers it, or after a
	// restart the batch is re-read and rewritten with the same versions,
	// which the sinks absorb. So it is counted and logged, not fatal.
	if err := p.source.Commit(ctx, batch.Commit); err != nil {
		p.stats.recordCommitFailure()
		p.log.Warn("commit input offsets failed; the batch will be re-read after a restart",
			zap.Int("partitions", len(batch.Commit)), zap.Error(err))
	}
	if p.written == nil {
		p.written = maps.Clone(p.ckptFrom)
		if p.written == nil {
			p.written = map[int32]int64{}
		}
	}
	for _, pos := range batch.Commit {
		p.written[int32(pos.Partition)] = pos.Offset
	}
	p.wroteAny = true
	committed := p.now()
	p.stats.recordBatch(batch, recs, sb.start, sb.scored, writeStart, written, committed)
	if p.obs != nil {
		p.obs.BatchDone(BatchObservation{
			Records: batch.Records, Events: int(batch.Events.NumRows()), DeadLetters: len(batch.DeadLetters),
			Recommendations: int(recs.Recs.NumRows()),
			Score:           sb.scored.Sub(sb.start), Write: written.Sub(writeStart), Commit: committed.Sub(written),
		})
	}
	if sb.checkpoint != nil {
		if err := sb.checkpoint.Save(ctx); err != nil {
			// Not fatal: the previous checkpoint stays valid, a restart
			// just replays more.
			p.stats.recordCheckpointFailure()
			p.log.Warn("checkpoint failed", zap.Error(err))
		} else {
			p.stats.recordCheckpoint(p.now())
		}
	}
	return nil
}

// retry runs op until it succeeds, fails with an error that is not
// sinks.ErrUnavailable, or ctx ends. Each retry is counted and logged.
func (p *Pipeline) retry(ctx context.Context, what string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.cfg.RetryInitial
	b.MaxInterval = p.cfg.RetryMax
	b.MaxElapsedTime = 0 // an outage pauses the pipeline; it never drops the batch
	attempt := 0
	// Whatever the outcome, the sink is no longer being retried.
	defer p.stats.outages.ended(what)
	err := backoff.RetryNotify(func() error {
		err := op()
		if err != nil {
			p.stats.outages.failed(what, err, p.now())
		}
		if err != nil && !errors.Is(err, sinks.ErrUnavailable) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		attempt++
		p.stats.recordRetry(what)
		p.log.Warn("unavailable, pausing consumption and retrying",
			zap.String("target", what), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
	})
	if err != nil {
		return fmt.Errorf("write to %s: %w", what, err)
	}
	if attempt > 0 {
		p.log.Info("available again, resuming", zap.String("target", what), zap.Int("retries", attempt))
	}
	return nil
}
