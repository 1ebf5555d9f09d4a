package scorers

import (
	"context"
	"fmt"
	"slices"
)

// gatherWork loads the states of the batch's users into b.work, a cold
// start (idle longer than idle_expiry) from zeros.
func (s *Scorer) gatherWork(d int) {
	b := &s.b
	nUsers := len(b.users)
	b.work = slices.Grow(b.work[:0], nUsers*d)[:nUsers*d]
	s.store.Gather(b.slots, b.work)
	for _, u := range b.active {
		if b.users[u].cold {
			clear(b.work[int(u)*d : (int(u)+1)*d])
		}
	}
}

// growResults sizes b.scores and b.items for k results per batch user.
func (s *Scorer) growResults(k int) {
	b := &s.b
	n := len(b.users) * k
	b.scores = slices.Grow(b.scores[:0], n)[:n]
	b.items = slices.Grow(b.items[:0], n)[:n]
}

// runRounds applies every active user's events with a stateful model on
// ONNX Runtime, L per run: round r runs the users with more than r*L
// events, in chunks of at most batch users. A user's top-K is the one of
// their last round (their state is unchanged by later padding).
func (s *Scorer) runRounds(ctx context.Context, e *engine) error {
	b := &s.b
	s.gatherWork(e.width)
	s.growResults(e.modelK)
	for round := 0; ; round++ {
		b.runList = b.runList[:0]
		for _, u := range b.active {
			if int(b.users[u].evCount) > round*e.steps {
				b.runList = append(b.runList, u)
			}
		}
		if len(b.runList) == 0 {
			return nil
		}
		for start := 0; start < len(b.runList); start += e.batch {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("score batch: %w", err)
			}
			chunk := b.runList[start:min(start+e.batch, len(b.runList))]
			if err := s.runChunk(e, chunk, round); err != nil {
				return fmt.Errorf("score batch: round %d, %d users: %w", round, len(chunk), err)
			}
		}
	}
}

// runChunk runs the session once for the users of chunk, on their events of
// the given round.
func (s *Scorer) runChunk(e *engine, chunk []int32, round int) error {
	b, r := &s.b, &e.run
	d, l, k := e.width, e.steps, e.modelK
	n := len(chunk)
	rowsRun := n
	if e.fixedBatch {
		rowsRun = e.batch
	}
	for i, u := range chunk {
		bu := &b.users[u]
		copy(r.state[i*d:(i+1)*d], b.work[int(u)*d:(int(u)+1)*d])
		from := int(bu.evStart) + round*l
		cnt := min(l, int(bu.evCount)-round*l)
		copy(r.items[i*l:], b.evItem[from:from+cnt])
		copy(r.types[i*l:], b.evType[from:from+cnt])
		copy(r.decays[i*l:], b.evDecay[from:from+cnt])
		padEvents(r, i*l+cnt, (i+1)*l)
		s.fillExclude(e, i, u)
	}
	if rowsRun > n {
		clear(r.state[n*d : rowsRun*d])
		padEvents(r, n*l, rowsRun*l)
		clear(r.exclude[n*e.excludeWidth : rowsRun*e.excludeWidth])
	}
	if err := e.runSession(rowsRun); err != nil {
		return err
	}
	for i, u := range chunk {
		bu := &b.users[u]
		copy(b.work[int(u)*d:(int(u)+1)*d], r.newS[i*d:(i+1)*d])
		if int(bu.evCount) <= (round+1)*l { // the user's last round
			copy(b.scores[int(u)*k:(int(u)+1)*k], r.scores[i*k:(i+1)*k])
			copy(b.items[int(u)*k:(int(u)+1)*k], r.topIdx[i*k:(i+1)*k])
		}
	}
	return nil
}

// fillExclude writes batch user u's exclude list into row i of the run's
// exclude_items, padded with 0.
func (s *Scorer) fillExclude(e *engine, i int, u int32) {
	m := e.excludeWidth
	if m == 0 {
		return
	}
	b := &s.b
	ex := e.run.exclude[i*m : (i+1)*m]
	bu := &b.users[u]
	for j, item := range b.exclude[int(u)*e.exclude : int(u)*e.exclude+int(bu.nExclude)] {
		ex[j] = int64(item)
	}
	clear(ex[bu.nExclude:])
}

// runSession runs the session on the first rows users of the run buffers.
func (e *engine) runSession(rows int) error {
	vals := e.run.full
	if rows != e.batch {
		var err error
		if vals, err = e.tensors(rows); err != nil {
			return err
		}
		defer destroyAll(vals)
	}
	nIn := len(e.inputs)
	if err := e.session.Run(vals[:nIn], vals[nIn:]); err != nil {
		return fmt.Errorf("run model %s: %w", e.version, err)
	}
	return nil
}

// padEvents fills event positions [from, to) with padding: item 0, type 0,
// decay exactly 1.
func padEvents(r *runBuffers, from, to int) {
	clear(r.items[from:to])
	clear(r.types[from:to])
	for j := from; j < to; j++ {
		r.decays[j] = 1
	}
}

// runSequence scores every active user with a sequence model: one run per
// chunk of users, each fed their last H items (most recent last, padded
// with 0 on the left).
func (s *Scorer) runSequence(ctx context.Context, e *engine) error {
	b, r := &s.b, &e.run
	h, k := e.width, e.modelK
	s.growResults(k)
	for start := 0; start < len(b.active); start += e.batch {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("score batch: %w", err)
		}
		chunk := b.active[start:min(start+e.batch, len(b.active))]
		n := len(chunk)
		rowsRun := n
		if e.fixedBatch {
			rowsRun = e.batch
		}
		for i, u := range chunk {
			bu := &b.users[u]
			row := r.hist[i*h : (i+1)*h]
			pad := h - int(bu.nHist)
			clear(row[:pad])
			for j, item := range b.hist[int(u)*h : int(u)*h+int(bu.nHist)] {
				row[pad+j] = int64(item)
			}
			s.fillExclude(e, i, u)
		}
		if rowsRun > n {
			clear(r.hist[n*h : rowsRun*h])
			clear(r.exclude[n*e.excludeWidth : rowsRun*e.excludeWidth])
		}
		if err := e.runSession(rowsRun); err != nil {
			return fmt.Errorf("score batch: %d users: %w", n, err)
		}
		for i, u := range chunk {
			copy(b.scores[int(u)*k:(int(u)+1)*k], r.scores[i*k:(i+1)*k])
			copy(b.items[int(u)*k:(int(u)+1)*k], r.topIdx[i*k:(i+1)*k])
		}
	}
	return nil
}

// runGPU scores every active user with the built-in tower on the GPU: each
// user's events are applied to their state in Go (the graph's operations
// exactly), then the states are ranked on the GPU in chunks.
func (s *Scorer) runGPU(ctx context.Context, e *engine) error {
	b, g := &s.b, e.gpu
	d, k, m := e.width, e.modelK, e.excludeWidth
	s.gatherWork(d)
	s.growResults(k)
	for _, u := range b.active {
		bu := &b.users[u]
		from, to := bu.evStart, bu.evStart+bu.evCount
		g.update(b.work[int(u)*d:(int(u)+1)*d], b.evItem[from:to], b.evType[from:to], b.evDecay[from:to])
	}
	for start := 0; start < len(b.active); start += g.rows {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("score batch: %w", err)
		}
		chunk := b.active[start:min(start+g.rows, len(b.active))]
		for i, u := range chunk {
			bu := &b.users[u]
			copy(g.states[i*d:(i+1)*d], b.work[int(u)*d:(int(u)+1)*d])
			if m > 0 {
				ex := g.exclude[i*m : (i+1)*m]
				clear(ex[copy(ex, b.exclude[int(u)*e.exclude:int(u)*e.exclude+int(bu.nExclude)]):])
			}
		}
		if err := g.topk.Score(g.states, g.exclude, len(chunk), g.outS, g.outI); err != nil {
			return fmt.Errorf("score batch: model %s: %w", e.version, err)
		}
		for i, u := range chunk {
			copy(b.scores[int(u)*k:(int(u)+1)*k], g.outS[i*k:(i+1)*k])
			items := b.items[int(u)*k : (int(u)+1)*k]
			for j, idx := range g.outI[i*k : (i+1)*k] {
				items[j] = int64(idx)
			}
		}
	}
	return nil
}
