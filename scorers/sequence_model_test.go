package scorers

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/state"
)

// referenceSequence scores a history as the sequence graph does: the mean
// of the history's embeddings, dot every item, + prior, mask, top k.
func referenceSequence(spec models.SequenceModelSpec, hist, exclude []int32, k int) ([]float32, []int64) {
	dim := len(spec.Embeddings[0])
	emb := func(i int32) []float32 { return spec.Embeddings[i-1] }
	user := make([]float32, dim)
	var cnt float32
	for _, h := range hist {
		if h == 0 {
			continue
		}
		cnt++
		for j, v := range emb(h) {
			user[j] += v
		}
	}
	inv := 1 / max(cnt, 1)
	for j := range user {
		user[j] *= inv
	}
	n := len(spec.Items)
	prior := models.PopularityPrior(spec.Counts, n, models.DefaultPriorWeight)
	all := make([]float32, n+1)
	all[0] = schemas.ModelMaskedScore
	for i := 1; i <= n; i++ {
		var dot float32
		for j, v := range emb(int32(i)) {
			dot += user[j] * v
		}
		all[i] = dot + prior[i]
	}
	for _, x := range exclude {
		all[x] = schemas.ModelMaskedScore
	}
	order := make([]int64, n+1)
	for i := range order {
		order[i] = int64(i)
	}
	slices.SortStableFunc(order, func(a, b int64) int {
		switch {
		case all[a] > all[b]:
			return -1
		case all[a] < all[b]:
			return 1
		}
		return 0
	})
	scores := make([]float32, k)
	for j := range k {
		scores[j] = all[order[j]]
	}
	return scores, order[:k]
}

// TestScorerSequenceModel scores users with a sequence model: the store
// keeps each user's last H known items (newest last), the records match the
// Go reference, bought items are excluded (by the graph, or by the scorer
// when the graph has no exclude_items input).
func TestScorerSequenceModel(t *testing.T) {
	const n, d, h = 200, 16, 6
	for _, noExclude := range []bool{false, true} {
		t.Run(fmt.Sprintf("no_exclude=%v", noExclude), func(t *testing.T) {
			spec := scorertest.SequenceSpec(n, d, 3, h, noExclude)
			s := newTestScorer(t, Config{ModelDir: scorertest.WriteSequenceModel(t, spec), BatchUsers: 3})
			if s.Device() != DeviceCPU || s.Store().HistoryLen() != h || s.Store().Dim() != 0 {
				t.Fatalf("device %s, store H=%d D=%d", s.Device(), s.Store().HistoryLen(), s.Store().Dim())
			}
			r := rand.New(rand.NewPCG(5, 6))
			var evs []testEvent
			want := map[string][]int32{}
			bought := map[string][]int32{}
			for i := range 120 {
				u := fmt.Sprintf("u%d", r.IntN(9))
				item := r.IntN(n)
				typ := uint8(r.IntN(4))
				id := fmt.Sprintf("i%04d", item)
				switch {
				case i%17 == 0:
					id = "unknown" // advances the clock only
				case i%13 == 0:
					typ = typeSearch // search of weight 0.5 and no item
					id = ""
				}
				evs = append(evs, testEvent{user: u, item: id, typ: typ, ts: 1_000_000 + int64(i)*1000, offset: int64(i)})
				if id != "" && id != "unknown" {
					want[u] = append(want[u], int32(item+1))
					if typ == typePurchase && !slices.Contains(bought[u], int32(item+1)) {
						bought[u] = append(bought[u], int32(item+1))
					}
				}
			}
			// Three batches: histories carry over from batch to batch.
			var recs []schemas.Recommendation
			for _, part := range [][]testEvent{evs[:40], evs[40:41], evs[41:]} {
				recs = append(recs, score(t, s, part)...)
			}
			last := map[string]schemas.Recommendation{}
			for _, rec := range recs {
				last[rec.UserID] = rec
			}
			for u, items := range want {
				got, ok := s.Store().Get(u)
				wantHist := items[max(0, len(items)-h):]
				if !ok || !slices.Equal(got.History, wantHist) || got.State != nil {
					t.Fatalf("%s: history %v, want the last %d known items %v", u, got.History, h, wantHist)
				}
				rec := last[u]
				// With exclude_items the graph ranks K items past the bought
				// ones; without it the scorer drops them from the graph's K.
				exclude := bought[u]
				if noExclude {
					exclude = nil
				}
				wantScores, wantItems := referenceSequence(spec, wantHist, exclude, models.DefaultTopK)
				var wi []string
				var ws []float32
				for j, idx := range wantItems {
					if !slices.Contains(bought[u], int32(idx)) {
						wi = append(wi, fmt.Sprintf("i%04d", idx-1))
						ws = append(ws, wantScores[j])
					}
				}
				if len(rec.Items) != len(wi) || (!noExclude && len(wi) != models.DefaultTopK) {
					t.Fatalf("%s: %d items, want %d", u, len(rec.Items), len(wi))
				}
				for j := range rec.Items {
					if math.Abs(float64(rec.Scores[j]-ws[j])) > 1e-5 {
						t.Fatalf("%s: score %d = %g, reference %g", u, j, rec.Scores[j], ws[j])
					}
					if rec.Items[j] != wi[j] && math.Abs(float64(ws[slices.Index(wi, rec.Items[j])]-ws[j])) > 1e-5 {
						t.Fatalf("%s: item %d = %s, reference %s", u, j, rec.Items[j], wi[j])
					}
					if slices.Contains(bought[u], int32(s.Model().ItemIndex(rec.Items[j]))) {
						t.Fatalf("%s: bought item %s recommended", u, rec.Items[j])
					}
				}
				if rec.ModelVersion != spec.Version {
					t.Fatalf("model version %q, want %q", rec.ModelVersion, spec.Version)
				}
			}
		})
	}
}

// TestScorerSequenceDeterminism requires byte-identical records and
// histories whatever the batch and run splits.
func TestScorerSequenceDeterminism(t *testing.T) {
	spec := scorertest.SequenceSpec(500, 16, 4, 0, false)
	dir := scorertest.WriteSequenceModel(t, spec)
	r := rand.New(rand.NewPCG(7, 8))
	var evs []testEvent
	perUser := map[string]int{}
	for i := range 400 {
		u := fmt.Sprintf("user-%02d", r.IntN(30))
		perUser[u]++
		evs = append(evs, testEvent{user: u, item: fmt.Sprintf("i%04d", r.IntN(500)),
			typ: uint8(r.IntN(4)), ts: 5_000_000 + int64(i)*100, offset: int64(i)})
	}
	run := func(cfg Config, sizes func(int) int) (map[string]string, map[string][]int32) {
		s := newTestScorer(t, cfg)
		last := map[string]string{}
		for start := 0; start < len(evs); {
			end := min(len(evs), start+sizes(start))
			for _, rec := range score(t, s, evs[start:end]) {
				j, _ := json.Marshal(rec)
				last[rec.UserID] = string(j)
			}
			start = end
		}
		hist := map[string][]int32{}
		s.Store().Each(func(u state.UserState) bool { hist[u.UserID] = u.History; return true })
		return last, hist
	}
	baseRecs, baseHist := run(Config{ModelDir: dir, HistoryLen: 10}, func(int) int { return len(evs) })
	rs := rand.New(rand.NewPCG(9, 9))
	gotRecs, gotHist := run(Config{ModelDir: dir, HistoryLen: 10, BatchUsers: 4, IntraOpThreads: 1}, func(int) int { return 1 + rs.IntN(25) })
	if len(baseRecs) != 30 {
		t.Fatalf("%d users refreshed, want 30", len(baseRecs))
	}
	for u, want := range baseRecs {
		if gotRecs[u] != want {
			t.Fatalf("%s: last record\n%s\nin one batch\n%s", u, gotRecs[u], want)
		}
		if !slices.Equal(gotHist[u], baseHist[u]) || len(baseHist[u]) != min(10, perUser[u]) {
			t.Fatalf("%s: history %v, in one batch %v", u, gotHist[u], baseHist[u])
		}
	}
}

func TestScorerRefusesSequenceMismatch(t *testing.T) {
	dir := scorertest.WriteSequenceModel(t, scorertest.SequenceSpec(20, 4, 1, 8, false))
	s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir, HistoryLen: 5}, nil)
	if err == nil {
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "history_len: 5, but the model has a fixed H=8") {
		t.Fatalf("NewScorer with history_len 5 for H=8: %v", err)
	}
}

// BenchmarkScoreSequence measures Score with the sequence test model (H=50,
// 10,000 items, D=64, top-20, one event per user), to compare with the
// stateful tower's BenchmarkScore.
func BenchmarkScoreSequence(b *testing.B) {
	spec := scorertest.SequenceSpec(benchItems, benchDim, 1, models.DefaultHistory, false)
	dir := scorertest.WriteSequenceModel(b, spec)
	for _, users := range []int{256, 1024} {
		b.Run(fmt.Sprintf("B=%d", users), func(b *testing.B) {
			s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir}, nil)
			if err != nil {
				b.Fatalf("new scorer (run make setup): %v", err)
			}
			defer s.Close()
			benchScore(b, s, users)
		})
	}
}
