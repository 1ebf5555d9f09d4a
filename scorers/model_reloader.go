package scorers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// reloadState is the scorer's side of model hot swaps: the version waiting
// to be swapped in and the watcher of CURRENT.
type reloadState struct {
	mu sync.Mutex // serialises loads (watcher and Reload)

	pendMu  sync.Mutex
	pending *engine // loaded and checked, not yet serving
	target  string  // version of pending, else of the serving engine
	// refused is the last version refused and refusedAt the time of the
	// CURRENT that named it: the watcher retries it only once CURRENT is
	// written again (activated anew, after a fix).
	refused   string
	refusedAt time.Time
	lastErr   string // last error reading CURRENT, logged once

	stop context.CancelFunc
	done chan struct{}
}

// startWatching reads CURRENT every interval until Close.
func (s *Scorer) startWatching(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	s.reload.stop = cancel
	s.reload.done = make(chan struct{})
	go func() {
		defer close(s.reload.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// Errors are logged by reloadCurrent; the old model serves on.
			_ = s.reloadCurrent(ctx, false)
		}
	}()
}

func (s *Scorer) stopWatching() {
	if s.reload.stop != nil {
		s.reload.stop()
		<-s.reload.done
		s.reload.stop = nil
	}
}

// Reload reads CURRENT of the models directory now and, when it names a
// version other than the one serving (or waiting to), loads and checks it
// off the hot path; the next Score swaps it in. It returns nil when the
// version is already the one serving or waiting, and the reason when the
// version is refused (the old one keeps serving). Unlike the watcher, which
// retries a refused version only once CURRENT is written again, it always
// retries. It fails with a model_dir configuration, which has nothing to
// reload.
func (s *Scorer) Reload(ctx context.Context) error {
	if s.registry == nil {
		return errors.New("reload: the scorer serves a fixed model_dir; configure models_dir to swap models")
	}
	return s.reloadCurrent(ctx, true)
}

func (s *Scorer) reloadCurrent(ctx context.Context, explicit bool) error {
	r := &s.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("reload: scorer is closed")
	}
	name, written, err := s.registry.CurrentWritten()
	if err != nil {
		if err.Error() != r.lastErr || explicit {
			s.log.Error("read the current model version; the old one keeps serving", zap.Error(err))
			r.lastErr = err.Error()
		}
		return fmt.Errorf("reload: %w", err)
	}
	r.lastErr = ""
	r.pendMu.Lock()
	target, refused, refusedAt := r.target, r.refused, r.refusedAt
	r.pendMu.Unlock()
	if name == target || (!explicit && name == refused && written.Equal(refusedAt)) {
		return nil
	}
	serving := s.eng.Load()
	start := time.Now()
	e, err := s.loadVersion(ctx, name)
	if err != nil {
		s.refusals.Add(1)
		r.pendMu.Lock()
		r.refused, r.refusedAt = name, written
		r.pendMu.Unlock()
		s.log.Error("model version refused; the old one keeps serving",
			zap.String("version", name), zap.String("serving", target), zap.Error(err))
		return fmt.Errorf("reload model version %s: %w", name, err)
	}
	e.remapFrom, e.remap = serving, itemRemap(serving.model, e.model)
	r.pendMu.Lock()
	old := r.pending
	r.pending, r.target, r.refused = e, name, ""
	r.pendMu.Unlock()
	if old != nil {
		// Never served: the Score that takes pending does so under pendMu.
		if err := old.close(); err != nil {
			s.log.Warn("close a model version that was replaced before serving", zap.Error(err))
		}
	}
	s.log.Info("model version loaded; the next batch is scored by it",
		zap.String("version", name), zap.String("model_version", e.version),
		zap.String("device", e.device), zap.Duration("load", time.Since(start)))
	return nil
}

// loadVersion loads a version of the registry.
func (s *Scorer) loadVersion(ctx context.Context, name string) (*engine, error) {
	dir, err := s.registry.VersionDir(name)
	if err != nil {
		return nil, err
	}
	return s.loadEngine(ctx, dir, name)
}

// takePending returns the engine waiting to serve, if any, and forgets it.
func (s *Scorer) takePending() *engine {
	r := &s.reload
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	e := r.pending
	r.pending = nil
	return e
}

// adopt makes next the serving engine, between two batches (s.mu held):
// the store keeps every user, reshaped for next (see Scorer), and the old
// engine is released.
func (s *Scorer) adopt(next *engine) {
	old := s.eng.Load()
	remap := next.remap
	if next.remapFrom != old {
		remap = itemRemap(old.model, next.model)
	}
	next.remapFrom, next.remap = nil, nil
	keep := old.contract == next.contract && old.width == next.width
	dim, histLen := next.storeLayout()
	s.store.Reshape(dim, histLen, next.exclude, remap, !keep)
	s.eng.Store(next)
	s.swaps.Add(1)
	if err := old.close(); err != nil {
		s.log.Warn("close the model version swapped out", zap.String("model_version", old.version), zap.Error(err))
	}
	s.log.Info("model version swapped in",
		zap.String("from", old.version), zap.String("to", next.version), zap.String("version_dir", next.name),
		zap.String("device", next.device), zap.Bool("states_kept", keep),
		zap.Bool("items_remapped", remap != nil), zap.Int("users", s.store.Len()))
}
