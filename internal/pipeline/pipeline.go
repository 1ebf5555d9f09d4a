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
	"context"
	"errors"
	"fmt"
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
	if c.RetryInitial == 0 {
		c.RetryInitial = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
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

// Stats returns the live statistics of the pipeline.
func (p *Pipeline) Stats() *Stats { return p.stats }

// Run processes batches until ctx is cancelled or a fatal error occurs.
// Cancelling ctx is a soft stop: no new batch is taken, the in-flight batch
// is written and committed within DrainTimeout, and Run returns nil.
func (p *Pipeline) Run(ctx context.Context) error {
	// Work on a batch continues past a soft stop, until the drain deadline.
	work, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	stopWatch := context.AfterFunc(ctx, func() {
		timer := time.AfterFunc(p.cfg.DrainTimeout, abandon)
		context.AfterFunc(work, func() { timer.Stop() })
	})
	defer stopWatch()

	for {
		batch, err := p.source.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				p.log.Info("pipeline stopped: input drained")
				return nil
			}
			return fmt.Errorf("read next batch: %w", err)
		}
		err = p.process(work, batch)
		batch.Release()
		if err != nil {
			if work.Err() != nil {
				p.log.Warn("pipeline stopped: drain deadline passed, in-flight batch left uncommitted", zap.Error(err))
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			p.log.Info("pipeline stopped: in-flight batch drained and committed")
			return nil
		}
	}
}

// process scores, writes and commits one batch.
func (p *Pipeline) process(ctx context.Context, batch *schemas.EventBatch) error {
	start := p.now()
	recs, err := p.scorer.Score(ctx, batch)
	if err != nil {
		return fmt.Errorf("score batch of %d events: %w", batch.Events.NumRows(), err)
	}
	defer recs.Release()
	scored := p.now()

	var wg sync.WaitGroup
	errs := make([]error, len(p.sinks)+1)
	if len(batch.DeadLetters) > 0 {
		if p.dlq == nil {
			return fmt.Errorf("batch has %d dead letters and no dead-letter sink is configured", len(batch.DeadLetters))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[0] = p.retry(ctx, "dead_letters", func() error {
				return p.dlq.Write(ctx, batch.Topic, batch.DeadLetters)
			})
		}()
	}
	for i, s := range p.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i+1] = p.retry(ctx, s.Name, func() error { return s.Sink.Write(ctx, batch, recs) })
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
	p.stats.recordBatch(batch, recs, start, scored, written, p.now())
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
	err := backoff.RetryNotify(func() error {
		err := op()
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
