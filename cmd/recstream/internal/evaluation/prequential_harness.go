package evaluation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// HarnessConfig configures Evaluate. The zero value of each field means
// its documented default.
type HarnessConfig struct {
	// K is the length of the recommendation lists scored. Default 10.
	K int
	// EvalStart is the index of the first event scored: events before it
	// only warm the recommenders up (the model's user states, the
	// baselines' counts). 0 scores from the first event.
	EvalStart int
	// Repeats also scores an event on the same item as the user's previous
	// event (the click after a view, the purchase after add-to-cart). By
	// default such events are applied but not scored, and that item is
	// removed from every list before the top K is taken: "show the item
	// the user is looking at" is not a recommendation, and would reward
	// whichever recommender repeats it.
	Repeats bool
	// ExcludeSeen removes every item the user has had an event on from
	// every list before the top K is taken (at most SeenDepth of them are
	// made up for by asking recommenders for longer lists), for data where
	// an item is consumed once (MovieLens ratings). A model's scorer must
	// then exclude them too (scorers.Config.ExcludeTypes) or its lists run
	// short.
	ExcludeSeen bool
	// SeenDepth is how many more items than K+1 a recommender is asked for
	// when ExcludeSeen is set. Default 512.
	SeenDepth int
	// MaxBatch bounds the events applied at once in the scored part; a
	// batch never holds two events of one user, so each user is scored on
	// the state after their previous event. Default 256.
	MaxBatch int
	// WarmupBatch is the number of events applied at once before
	// EvalStart. Default 4096.
	WarmupBatch int
	// Buckets is the number of equal time spans the scored part is cut
	// into for Result.Series. Default 20.
	Buckets int
	// Progress, when not nil, is called now and then with the events
	// applied and the total.
	Progress func(done, total int)
	// Resamples is the number of bootstrap resamples of the scored events
	// behind each metric's confidence interval. Default 1000.
	Resamples int
}

// WithDefaults returns c with every zero field set to its default.
func (c HarnessConfig) WithDefaults() HarnessConfig {
	c.K = cmp.Or(c.K, 10)
	c.MaxBatch = cmp.Or(c.MaxBatch, 256)
	c.SeenDepth = cmp.Or(c.SeenDepth, 512)
	c.WarmupBatch = cmp.Or(c.WarmupBatch, 4096)
	c.Buckets = cmp.Or(c.Buckets, 20)
	c.Resamples = cmp.Or(c.Resamples, 1000)
	return c
}

// Validate checks c (after WithDefaults).
func (c HarnessConfig) Validate() error {
	switch {
	case c.K <= 0 || c.K > math.MaxUint16:
		return fmt.Errorf("k: must be in [1, %d], got %d", math.MaxUint16, c.K)
	case c.EvalStart < 0:
		return fmt.Errorf("eval_start: must be >= 0, got %d", c.EvalStart)
	case c.SeenDepth < 0:
		return fmt.Errorf("seen_depth: must be >= 0, got %d", c.SeenDepth)
	case c.MaxBatch <= 0:
		return fmt.Errorf("max_batch: must be > 0, got %d", c.MaxBatch)
	case c.WarmupBatch <= 0:
		return fmt.Errorf("warmup_batch: must be > 0, got %d", c.WarmupBatch)
	case c.Buckets <= 0:
		return fmt.Errorf("buckets: must be > 0, got %d", c.Buckets)
	case c.Resamples <= 0:
		return fmt.Errorf("resamples: must be > 0, got %d", c.Resamples)
	}
	return nil
}

// Depth is the longest list the harness asks a recommender for (after
// WithDefaults): K+1, plus SeenDepth when ExcludeSeen is set. Baselines
// are built to answer that many.
func (c HarnessConfig) Depth() int {
	if c.ExcludeSeen {
		return c.K + 1 + c.SeenDepth
	}
	return c.K + 1
}

// Metrics are prequential ranking metrics over the scored events: each
// event's item is looked up in the top K its user was recommended just
// before the event.
type Metrics struct {
	// Scored is the number of events scored.
	Scored int `json:"scored"`
	// Hits is how many of them had their item in the top K.
	Hits int `json:"hits"`
	// HR is Hits / Scored (hit rate at K).
	HR float64 `json:"hr"`
	// NDCG is the mean of 1/log2(1+rank) over scored events (0 outside the
	// top K): with one relevant item per event, NDCG at K.
	NDCG float64 `json:"ndcg"`
	// MRR is the mean of 1/rank (0 outside the top K): MRR at K.
	MRR float64 `json:"mrr"`
}

// Interval is a 95 % bootstrap confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Bucket holds the metrics of one time span of the scored part.
type Bucket struct {
	FromMs int64 `json:"from_ms"`
	ToMs   int64 `json:"to_ms"`
	Metrics
}

// Result is one recommender's score.
type Result struct {
	Name string `json:"name"`
	Metrics
	// HRInterval and NDCGInterval are 95 % bootstrap intervals of HR and
	// NDCG over the scored events. The resamples are the same for every
	// recommender of a report, so two recommenders' intervals compare.
	HRInterval   Interval `json:"hr_ci95"`
	NDCGInterval Interval `json:"ndcg_ci95"`
	// CandidateRecall is, for a two-stage recommender, the share of scored
	// events whose item was among its candidates (HR's ceiling); -1 for a
	// recommender without candidates.
	CandidateRecall float64 `json:"candidate_recall"`
	// Coverage is the share of the catalogue that appeared in at least one
	// top-K list.
	Coverage float64 `json:"coverage"`
	// Series splits the metrics over time (HarnessConfig.Buckets spans).
	Series []Bucket `json:"series"`
}

// Report is the outcome of Evaluate.
type Report struct {
	// Dataset describes the data replayed.
	Dataset string `json:"dataset"`
	// K is the list length scored.
	K int `json:"k"`
	// Events is the number of events replayed; WarmupEvents of them came
	// before the scored part.
	Events       int `json:"events"`
	WarmupEvents int `json:"warmup_events"`
	// EvalFromMs and EvalToMs bound the times of the scored part.
	EvalFromMs int64 `json:"eval_from_ms"`
	EvalToMs   int64 `json:"eval_to_ms"`
	// Scored counts the events scored; the others of the scored part were
	// skipped: no item (a search), a user with no earlier event (no
	// recommender personalises from nothing), or a repeat: of the user's
	// previous item (see HarnessConfig.Repeats), or with ExcludeSeen a seen
	// item: one the user had an event on before, but not just before.
	Scored          int `json:"scored"`
	SkippedNoItem   int `json:"skipped_no_item"`
	SkippedColdUser int `json:"skipped_cold_user"`
	SkippedRepeat   int `json:"skipped_repeat"`
	SkippedSeen     int `json:"skipped_seen"`
	// Results holds one entry per recommender, in the order given.
	Results []Result `json:"results"`
	// Seconds is how long the replay took.
	Seconds float64 `json:"seconds"`
}

// accumulator sums one recommender's metrics.
type accumulator struct {
	hits      int
	ndcg, mrr float64
	buckets   []accBucket
	// ranks holds each scored event's rank of its item, 0 for a miss, for
	// the bootstrap; shown the items that were in a top K.
	ranks []uint16
	shown map[int32]struct{}
}

type accBucket struct {
	scored, hits int
	ndcg, mrr    float64
}

// Evaluate replays ds in time order through every recommender and scores
// them prequentially: for each event from cfg.EvalStart on, before the
// event is applied, each recommender gives the user's top K, and the
// event's item is looked up in it; then the event is applied to all. It
// returns ctx's error if ctx ends first, or the first error of a
// recommender's Update.
func Evaluate(ctx context.Context, ds *Dataset, recs []Recommender, cfg HarnessConfig) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("evaluate: no recommenders")
	}
	started := time.Now()
	n := len(ds.Events)
	start := min(cfg.EvalStart, n)
	rep := &Report{Dataset: ds.Source, K: cfg.K, Events: n, WarmupEvents: start}
	rep.EvalFromMs, rep.EvalToMs = ds.Span(start, n)
	span := rep.EvalToMs - rep.EvalFromMs + 1
	accs := make([]accumulator, len(recs))
	for i := range accs {
		accs[i].buckets = make([]accBucket, cfg.Buckets)
		accs[i].shown = map[int32]struct{}{}
	}
	const noEvent = -2 // lastItem of a user not seen yet
	lastItem := make([]int32, len(ds.Users))
	for i := range lastItem {
		lastItem[i] = noEvent
	}
	// seen holds (user, item) pairs with an event, for ExcludeSeen; nSeen
	// counts each user's.
	seen := map[uint64]struct{}{}
	nSeen := make([]int, len(ds.Users))
	pair := func(u, it int32) uint64 { return uint64(uint32(u))<<32 | uint64(uint32(it)) }
	apply := func(evs []Event) error {
		for _, r := range recs {
			if err := r.Update(ctx, evs); err != nil {
				return fmt.Errorf("evaluate: update %s: %w", r.Name(), err)
			}
		}
		for _, e := range evs {
			if e.Item != NoItem || lastItem[e.User] == noEvent {
				lastItem[e.User] = e.Item
			}
			if cfg.ExcludeSeen && e.Item != NoItem {
				if _, ok := seen[pair(e.User, e.Item)]; !ok {
					seen[pair(e.User, e.Item)] = struct{}{}
					nSeen[e.User]++
				}
			}
		}
		return nil
	}
	report := func(done int) {
		if cfg.Progress != nil {
			cfg.Progress(done, n)
		}
	}

	for i := 0; i < start; i += cfg.WarmupBatch {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		end := min(start, i+cfg.WarmupBatch)
		if err := apply(ds.Events[i:end]); err != nil {
			return nil, err
		}
		report(end)
	}

	inBatch := make([]bool, len(ds.Users))
	list := make([]int32, 0, cfg.Depth())
	for i := start; i < n; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		j := i
		for j < n && j-i < cfg.MaxBatch && !inBatch[ds.Events[j].User] {
			inBatch[ds.Events[j].User] = true
			j++
		}
		batch := ds.Events[i:j]
		for _, e := range batch {
			inBatch[e.User] = false
			prev := lastItem[e.User]
			switch {
			case e.Item == NoItem:
				rep.SkippedNoItem++
				continue
			case prev == noEvent:
				rep.SkippedColdUser++
				continue
			case prev == e.Item && !cfg.Repeats:
				rep.SkippedRepeat++
				continue
			case cfg.ExcludeSeen && isSeen(seen, pair(e.User, e.Item)):
				rep.SkippedSeen++
				continue
			}
			rep.Scored++
			b := int((e.TsMs - rep.EvalFromMs) * int64(cfg.Buckets) / span)
			b = min(cfg.Buckets-1, max(0, b))
			ask := cfg.K + 1
			if cfg.ExcludeSeen {
				ask += min(nSeen[e.User], cfg.SeenDepth)
			}
			for r, rec := range recs {
				list = rec.Recommend(e.User, ask, list[:0])
				if cfg.ExcludeSeen {
					list = slices.DeleteFunc(list, func(it int32) bool {
						_, ok := seen[pair(e.User, it)]
						return ok
					})
				} else if !cfg.Repeats {
					if k := slices.Index(list, prev); k >= 0 {
						list = slices.Delete(list, k, k+1)
					}
				}
				list = list[:min(cfg.K, len(list))]
				a := &accs[r]
				for _, it := range list {
					a.shown[it] = struct{}{}
				}
				bk := &a.buckets[b]
				bk.scored++
				k := slices.Index(list, e.Item)
				a.ranks = append(a.ranks, uint16(k+1))
				if k >= 0 {
					rank := float64(k + 1)
					g, rr := 1/math.Log2(rank+1), 1/rank
					a.hits++
					a.ndcg += g
					a.mrr += rr
					bk.hits++
					bk.ndcg += g
					bk.mrr += rr
				}
			}
		}
		if err := apply(batch); err != nil {
			return nil, err
		}
		i = j
		report(i)
	}

	intervals := bootstrap(accs, cfg.Resamples)
	for r, rec := range recs {
		a := &accs[r]
		res := Result{Name: rec.Name(), Metrics: metrics(rep.Scored, a.hits, a.ndcg, a.mrr),
			HRInterval: intervals[r][0], NDCGInterval: intervals[r][1], CandidateRecall: -1}
		if cr, ok := rec.(CandidateRecaller); ok {
			res.CandidateRecall, _ = cr.CandidateRecall()
		}
		if len(ds.Items) > 0 {
			res.Coverage = float64(len(a.shown)) / float64(len(ds.Items))
		}
		for b, bk := range a.buckets {
			res.Series = append(res.Series, Bucket{
				FromMs:  rep.EvalFromMs + span*int64(b)/int64(cfg.Buckets),
				ToMs:    rep.EvalFromMs + span*int64(b+1)/int64(cfg.Buckets) - 1,
				Metrics: metrics(bk.scored, bk.hits, bk.ndcg, bk.mrr),
			})
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Seconds = time.Since(started).Seconds()
	return rep, nil
}

func isSeen(seen map[uint64]struct{}, k uint64) bool {
	_, ok := seen[k]
	return ok
}

func metrics(scored, hits int, ndcg, mrr float64) Metrics {
	m := Metrics{Scored: scored, Hits: hits}
	if scored > 0 {
		m.HR = float64(hits) / float64(scored)
		m.NDCG = ndcg / float64(scored)
		m.MRR = mrr / float64(scored)
	}
	return m
}

// bootstrap returns, per accumulator, 95 % percentile intervals of HR and
// NDCG from resamples of the scored events drawn with replacement. The
// draws are seeded and shared by every accumulator (a paired bootstrap), so
// a report is reproducible and its intervals comparable.
func bootstrap(accs []accumulator, resamples int) [][2]Interval {
	out := make([][2]Interval, len(accs))
	if len(accs) == 0 || len(accs[0].ranks) == 0 {
		return out
	}
	n := len(accs[0].ranks)
	// gain[k] is NDCG's gain at rank k (0: a miss).
	gain := make([]float64, 1<<16)
	for k := 1; k < len(gain); k++ {
		gain[k] = 1 / math.Log2(float64(k)+1)
	}
	hr := make([][]float64, len(accs))
	ndcg := make([][]float64, len(accs))
	hits := make([]int, len(accs))
	sums := make([]float64, len(accs))
	rng := rand.New(rand.NewPCG(1, 2))
	for b := 0; b < resamples; b++ {
		clear(hits)
		clear(sums)
		for j := 0; j < n; j++ {
			i := rng.IntN(n)
			for r := range accs {
				if k := accs[r].ranks[i]; k > 0 {
					hits[r]++
					sums[r] += gain[k]
				}
			}
		}
		for r := range accs {
			hr[r] = append(hr[r], float64(hits[r])/float64(n))
			ndcg[r] = append(ndcg[r], sums[r]/float64(n))
		}
	}
	for r := range accs {
		out[r] = [2]Interval{percentiles(hr[r]), percentiles(ndcg[r])}
	}
	return out
}

// percentiles returns the 2.5th and 97.5th percentiles of v (sorted here).
func percentiles(v []float64) Interval {
	slices.Sort(v)
	at := func(q float64) float64 { return v[min(len(v)-1, int(q*float64(len(v))))] }
	return Interval{Low: at(0.025), High: at(0.975)}
}
