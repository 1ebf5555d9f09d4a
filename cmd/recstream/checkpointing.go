package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/state"
)

// scorerCheckpointer takes a checkpoint of the scorer's state at most every
// interval; it implements pipeline.Checkpointer.
type scorerCheckpointer struct {
	store    *state.CheckpointStore
	scorer   *scorers.Scorer
	topic    string
	interval time.Duration
	last     time.Time
	log      *zap.Logger
}

func (c *scorerCheckpointer) Capture(positions map[int32]int64) pipeline.PendingCheckpoint {
	now := time.Now()
	if now.Sub(c.last) < c.interval {
		return nil
	}
	c.last = now
	snap := state.Capture(c.scorer.Store(), c.topic, c.scorer.ModelVersion(), positions)
	var err error
	if snap.Extras, err = c.scorer.CaptureExtras(); err != nil {
		err = fmt.Errorf("capture scorer state: %w", err)
	}
	return pendingCheckpoint{c: c, snap: snap, err: err}
}

type pendingCheckpoint struct {
	c    *scorerCheckpointer
	snap *state.Snapshot
	err  error // of the capture, reported by Save
}

func (p pendingCheckpoint) Save(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	start := time.Now()
	m, err := p.c.store.Save(ctx, p.snap)
	if err != nil {
		return err
	}
	p.c.log.Info("checkpoint saved", zap.Uint64("generation", m.Generation), zap.Int("users", m.Users),
		zap.Any("offsets", m.Offsets), zap.Duration("took", time.Since(start)))
	return nil
}

// restoreCheckpoint loads the newest valid checkpoint into the scorer and
// returns where the consumer must resume: the checkpoint's offsets, or, with
// no checkpoint at all, the start of every partition (an empty, non-nil map),
// so that the state is rebuilt by replay rather than silently lost.
func restoreCheckpoint(ctx context.Context, store *state.CheckpointStore, scorer *scorers.Scorer, log *zap.Logger) (map[int]int64, error) {
	snap, m, err := store.LoadLatest(ctx)
	if errors.Is(err, state.ErrNoCheckpoint) {
		log.Info("no checkpoint found: rebuilding user state by replaying the input from its start", zap.String("dir", store.Dir()))
		return map[int]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	if m.ModelVersion != scorer.ModelVersion() {
		log.Warn("checkpoint was taken with another model version; its state is restored as is",
			zap.String("checkpoint_model", m.ModelVersion), zap.String("model", scorer.ModelVersion()))
	}
	if err := snap.Restore(scorer.Store()); err != nil {
		return nil, fmt.Errorf("restore checkpoint generation %d: %w", m.Generation, err)
	}
	if err := scorer.RestoreExtras(snap.Extras); err != nil {
		return nil, fmt.Errorf("restore checkpoint generation %d: %w", m.Generation, err)
	}
	if scorer.Stats().Recommender == scorers.RecommenderRetrieval && len(snap.Extras) == 0 && m.Users > 0 {
		log.Warn("checkpoint holds no retrieval state (it was taken with the model recommender): the item index starts "+
			"empty and learns from the input after the checkpoint; replay the input to rebuild it whole",
			zap.Uint64("generation", m.Generation))
	}
	resume := make(map[int]int64, len(m.Offsets))
	for p, o := range m.Offsets {
		resume[int(p)] = o
	}
	log.Info("state restored from checkpoint", zap.Uint64("generation", m.Generation), zap.Int("users", m.Users),
		zap.Any("offsets", m.Offsets), zap.Time("taken", m.CreatedAt))
	return resume, nil
}
