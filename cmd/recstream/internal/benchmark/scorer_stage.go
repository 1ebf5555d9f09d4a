package benchmark

import (
	"context"
	"fmt"
	"time"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
)

// measureScore measures, in turns, raw ONNX Runtime session runs on the
// scorer's shapes (the ceiling), scorers.Scorer on the consumer's real
// batches (a fresh scorer, cold state, each repeat) and a plain Go loop for
// reference. The scorer's recommendation batches of the last repeat are
// kept for the sinks.
func (r *run) measureScore(ctx context.Context) error {
	if len(r.data.events) == 0 {
		return fmt.Errorf("score: no event batches (the consume stage keeps them)")
	}
	rt, err := onnxruntime.OpenRuntime("", r.log.Named("onnxruntime"))
	if err != nil {
		return fmt.Errorf("open ONNX Runtime: %w", err)
	}
	defer rt.Close()
	r.report.Machine.ONNXRuntime = rt.Version()
	model, err := models.LoadModelDir(r.data.modelDir)
	if err != nil {
		return fmt.Errorf("load benchmark model: %w", err)
	}
	cs, closeSessions, err := r.sessionContenders(model)
	if err != nil {
		return err
	}
	defer closeSessions()

	var events, refreshes, modelRefreshes int
	var evRates []float64
	var evCores coreSamples
	cs = append(cs, contender{
		row: Row{ID: "score.scorer", Stage: StageScore, Name: "scorers.Scorer.Score on the consumer's batches (default: retrieval)", Unit: "refreshes/s"},
		run: func(ctx context.Context, rep int) (float64, coreUse, error) {
			u := r.startUsage()
			sr, err := r.scoreBatches(ctx, scorers.Config{ModelDir: r.data.modelDir}, rep == r.cfg.Repeats-1)
			if err != nil {
				return 0, coreUse{}, err
			}
			use := u.read()
			events, refreshes, r.report.Machine.Device = sr.events, sr.refreshes, sr.device
			evRates = append(evRates, float64(events)/sr.took.Seconds())
			evCores.add(use)
			return float64(refreshes) / sr.took.Seconds(), use, nil
		},
	})
	cs = append(cs, contender{
		row: Row{ID: "score.model", Stage: StageScore, Name: "scorers.Scorer.Score, recommender: model", Unit: "refreshes/s",
			Note: "the trained model over the whole catalogue, the scorer's former default; same batches"},
		run: func(ctx context.Context, _ int) (float64, coreUse, error) {
			u := r.startUsage()
			cfg := scorers.Config{ModelDir: r.data.modelDir, Recommender: scorers.RecommenderModel}
			sr, err := r.scoreBatches(ctx, cfg, false)
			if err != nil {
				return 0, coreUse{}, err
			}
			modelRefreshes = sr.refreshes
			return float64(sr.refreshes) / sr.took.Seconds(), u.read(), nil
		},
	})
	loop := newGoLoop(r.data.emb, r.data.prior, r.cfg.Dim, models.DefaultTopK, r.cfg.Seed)
	cs = append(cs, contender{
		row: Row{ID: "score.goloop", Stage: StageScore, Name: "plain Go loop, one goroutine (reference)", Unit: "refreshes/s",
			Note: fmt.Sprintf("same update, every item scored, top-%d by insertion; %d users per repeat", models.DefaultTopK, r.cfg.GoLoopUsers)},
		run: func(context.Context, int) (float64, coreUse, error) {
			u := r.startUsage()
			start := time.Now()
			loop.score(r.cfg.GoLoopUsers)
			return float64(r.cfg.GoLoopUsers) / time.Since(start).Seconds(), u.read(), nil
		},
	})
	if _, err := r.measureInTurns(ctx, cs); err != nil {
		return fmt.Errorf("score: %w", err)
	}

	work := sessionWork(r.data.events, models.DefaultSteps, scorers.DefaultBatchUsers)
	work.refreshes = modelRefreshes
	modelRow := r.report.Row("score.model")
	work.seconds = float64(modelRefreshes) / modelRow.Value.Median
	r.scorerWork = work
	r.report.Data.Recommendations = refreshes
	modelRow.Note += fmt.Sprintf("; %d session rows in %d runs", work.rows, work.runs)
	row := r.report.Row("score.scorer")
	row.Note = fmt.Sprintf("%d events, %d refreshes (users coalesced per batch) in %d batches; cold state each repeat; "+
		"retrieval runs no model: compare it with the model path's row", events, refreshes, len(r.data.events))
	r.report.insertAfter("score.scorer", evCores.set(Row{ID: "score.scorer.events", Stage: StageScore, Name: "scorers.Scorer.Score, same runs, in events",
		Unit: "events/s", Value: NewFigure(evRates)}))
	if best := r.report.markBest(StageScore); best != nil {
		r.report.compare("score.scorer", best.ID)
		r.report.compare("score.model", best.ID)
		r.report.compare("score.goloop", best.ID)
	}
	return nil
}

// scoreRun is what one pass of a scorer over the data set did.
type scoreRun struct {
	events, refreshes int
	took              time.Duration // inside Score
	device            string
}

// scoreBatches scores the data set's batches with a fresh scorer of cfg;
// with keep the records are kept for the sink stages.
func (r *run) scoreBatches(ctx context.Context, cfg scorers.Config, keep bool) (scoreRun, error) {
	s, err := scorers.NewScorer(cfg, r.log.Named("scorer"))
	if err != nil {
		return scoreRun{}, fmt.Errorf("start scorer: %w", err)
	}
	defer s.Close()
	sr := scoreRun{device: s.Device()}
	for _, b := range r.data.events {
		start := time.Now()
		recs, err := s.Score(ctx, b)
		sr.took += time.Since(start)
		if err != nil {
			return scoreRun{}, fmt.Errorf("score batch of %d events: %w", b.Events.NumRows(), err)
		}
		sr.events += int(b.Events.NumRows())
		sr.refreshes += int(recs.Recs.NumRows())
		if keep {
			r.data.recs = append(r.data.recs, recs)
		} else {
			recs.Release()
		}
	}
	return sr, nil
}

// goLoop is the plain Go scorer the ONNX session replaces: apply one event
// to the user's state, score every item, keep the top K by insertion.
type goLoop struct {
	dim, k  int
	emb     []float32 // [N+1, D]
	prior   []float32 // [N+1]
	states  []float32
	scores  []float32
	topS    []float32
	topI    []int64
	seed    uint64
	counter uint64
}

func newGoLoop(emb, prior []float32, dim, k int, seed uint64) *goLoop {
	return &goLoop{dim: dim, k: k, emb: emb, prior: prior, scores: make([]float32, len(prior)),
		topS: make([]float32, k), topI: make([]int64, k), seed: seed}
}

// score refreshes users users, each with one event on a pseudo-random item.
func (g *goLoop) score(users int) {
	if len(g.states) < users*g.dim {
		g.states = make([]float32, users*g.dim)
	}
	n := len(g.prior) - 1
	for u := range users {
		state := g.states[u*g.dim : (u+1)*g.dim]
		g.counter++
		item := 1 + int((g.counter*0x9e3779b97f4a7c15^g.seed)%uint64(n))
		e := g.emb[item*g.dim : (item+1)*g.dim]
		for j := range state {
			state[j] = state[j]*0.9 + e[j]
		}
		for i := range g.scores {
			row := g.emb[i*g.dim : (i+1)*g.dim]
			var dot float32
			for j, v := range state {
				dot += v * row[j]
			}
			g.scores[i] = dot + g.prior[i]
		}
		g.scores[0] = schemas.ModelMaskedScore
		filled := 0
		for i, sc := range g.scores {
			if filled == g.k && !(sc > g.topS[g.k-1]) {
				continue
			}
			p := min(filled, g.k-1) // when full, the last entry drops out
			for p > 0 && g.topS[p-1] < sc {
				g.topS[p], g.topI[p] = g.topS[p-1], g.topI[p-1]
				p--
			}
			g.topS[p], g.topI[p] = sc, int64(i)
			filled = min(filled+1, g.k)
		}
	}
}

// scorerWork is the session work a set of batches needs from the scorer.
type scorerWork struct {
	// refreshes are the records the scorer returned (one per user per
	// batch); rows the users run through the session, summed over runs
	// (a user with more than L events in a batch takes a row per L); runs
	// the session runs of at most batchUsers users.
	refreshes, rows, runs, batchUsers int
	// seconds is the scorer's median time to score all the batches.
	seconds float64
}

// sessionWork counts the rows and runs the scorer's rounds need for
// batches: round r runs every user with more than r*steps events in the
// batch, in runs of at most batchUsers users.
func sessionWork(batches []*schemas.EventBatch, steps, batchUsers int) scorerWork {
	w := scorerWork{batchUsers: batchUsers}
	perUser := map[string]int{}
	for _, b := range batches {
		clear(perUser)
		rows := schemas.Rows(b.Events)
		for i := range int(b.Events.NumRows()) {
			perUser[rows.UserID.Value(i)]++
		}
		var inRound []int // users per round
		for _, n := range perUser {
			rounds := (n + steps - 1) / steps
			w.rows += rounds
			for len(inRound) < rounds {
				inRound = append(inRound, 0)
			}
			for r := range rounds {
				inRound[r]++
			}
		}
		for _, users := range inRound {
			w.runs += (users + batchUsers - 1) / batchUsers
		}
	}
	return w
}
