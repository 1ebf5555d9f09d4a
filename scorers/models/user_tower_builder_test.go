package models_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
)

// buildTower returns the ONNX graph of tower.
func buildTower(t *testing.T, tower *scorertest.ReferenceTower, steps, topK int) []byte {
	t.Helper()
	model, err := models.BuildUserTower(&models.UserTowerGraph{
		Dim: tower.Dim, Steps: steps, TopK: topK,
		ItemEmbeddings: tower.Emb, TypeWeights: tower.Weights, ItemPrior: tower.Prior,
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return model
}

func TestUserTowerMatchesReference(t *testing.T) {
	rt := scorertest.OpenRuntime(t)
	const n, d, l, m, k = 500, 32, 8, 6, 20
	spec := scorertest.Spec(n, d, 1)
	tower := scorertest.TowerFromSpec(t, spec)
	in, out := scorertest.ContractNames()
	sess, err := rt.NewSession(buildTower(t, tower, l, k), in, out, onnxruntime.SessionOptions{})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Destroy()

	r := rand.New(rand.NewPCG(3, 4))
	run := scorertest.RandomRun(r, 11, d, l, m, n, 5)
	run.K = k
	newS, scores, items := scorertest.RunGraph(t, sess, run)

	wantScores := make([]float32, k)
	wantItems := make([]int64, k)
	for u := range run.B {
		state := slices.Clone(run.State[u*d : (u+1)*d])
		tower.Update(state, run.Items[u*l:(u+1)*l], run.Types[u*l:(u+1)*l], run.Decays[u*l:(u+1)*l])
		for j := range d {
			got := newS[u*d+j]
			if math.Abs(float64(got-state[j])) > 1e-5 {
				t.Fatalf("user %d: new_state[%d] = %g, reference %g", u, j, got, state[j])
			}
			if math.Float32bits(got) != math.Float32bits(state[j]) {
				t.Errorf("user %d: new_state[%d] = %x, reference %x: the update is not bit-exact", u, j, math.Float32bits(got), math.Float32bits(state[j]))
			}
		}
		tower.TopK(state, run.Exclude[u*m:(u+1)*m], k, wantScores, wantItems)
		for j := range k {
			gs, gi := scores[u*k+j], items[u*k+j]
			if math.Abs(float64(gs-wantScores[j])) > 1e-5*max(1, math.Abs(float64(wantScores[j]))) {
				t.Fatalf("user %d: top_scores[%d] = %g, reference %g", u, j, gs, wantScores[j])
			}
			// Items may only swap where the reference scores are within
			// rounding of each other.
			if gi != wantItems[j] {
				other := slices.Index(wantItems, gi)
				if other < 0 || math.Abs(float64(wantScores[other]-wantScores[j])) > 1e-5 {
					t.Fatalf("user %d: top_items[%d] = %d, reference %d", u, j, gi, wantItems[j])
				}
			}
		}
	}
}

func TestUserTowerMasksExcludedAndPadding(t *testing.T) {
	rt := scorertest.OpenRuntime(t)
	const n, d, l, m = 5, 4, 2, 3
	spec := scorertest.Spec(n, d, 2)
	tower := scorertest.TowerFromSpec(t, spec)
	in, out := scorertest.ContractNames()
	// K=20 > N+1: the graph caps K at 6, so index 0 and the excluded items
	// must come out last with the masked score.
	model := buildTower(t, tower, l, 20)
	sess, err := rt.NewSession(model, in, out, onnxruntime.SessionOptions{})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Destroy()
	run := scorertest.GraphRun{B: 1, D: d, L: l, M: m, K: n + 1,
		State:   []float32{0, 0, 0, 0},
		Items:   []int64{0, 0},
		Types:   []int64{0, 0},
		Decays:  []float32{1, 1},
		Exclude: []int64{1, 0, 3}, // the two most popular; 0 is padding
	}
	_, scores, items := scorertest.RunGraph(t, sess, run)
	wantItems := []int64{2, 4, 5}
	if !slices.Equal(items[:3], wantItems) {
		t.Fatalf("cold user top items = %v, want popularity order %v first", items, wantItems)
	}
	for j, it := range items[:3] {
		if scores[j] != tower.Prior[it] {
			t.Errorf("cold user score of item %d = %g, want its prior %g", it, scores[j], tower.Prior[it])
		}
	}
	masked := items[3:]
	slices.Sort(masked)
	if !slices.Equal(masked, []int64{0, 1, 3}) {
		t.Errorf("masked tail = %v, want [0 1 3]", masked)
	}
	for _, s := range scores[3:] {
		if s > schemas.ModelMaskedScore {
			t.Errorf("masked score %g above %g", s, schemas.ModelMaskedScore)
		}
	}
}

func TestUserTowerPaddingIsExactIdentity(t *testing.T) {
	rt := scorertest.OpenRuntime(t)
	const n, d, l = 50, 16, 4
	spec := scorertest.Spec(n, d, 3)
	tower := scorertest.TowerFromSpec(t, spec)
	in, out := scorertest.ContractNames()
	sess, err := rt.NewSession(buildTower(t, tower, l, 5), in, out, onnxruntime.SessionOptions{})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Destroy()
	r := rand.New(rand.NewPCG(5, 6))
	run := scorertest.GraphRun{B: 3, D: d, L: l, M: 1, K: 5,
		State: make([]float32, 3*d), Items: make([]int64, 3*l), Types: make([]int64, 3*l),
		Decays: make([]float32, 3*l), Exclude: make([]int64, 3)}
	for i := range run.State {
		run.State[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30)))
	}
	run.State[0] = float32(math.Copysign(0, -1)) // -0 may come back as +0, nothing else may change
	for i := range run.Decays {
		run.Decays[i] = 1
	}
	newS, _, _ := scorertest.RunGraph(t, sess, run)
	for i, v := range newS {
		want := run.State[i]
		if i == 0 {
			want = 0
		}
		if math.Float32bits(v) != math.Float32bits(want) {
			t.Fatalf("padding changed state[%d]: %x -> %x", i, math.Float32bits(run.State[i]), math.Float32bits(v))
		}
	}
}

func TestReplaceFloatInitializer(t *testing.T) {
	rt := scorertest.OpenRuntime(t)
	const n, d, l = 20, 8, 1
	tower := scorertest.TowerFromSpec(t, scorertest.Spec(n, d, 4))
	model := buildTower(t, tower, l, 3)
	doubled := slices.Clone(tower.Weights)
	for i := range doubled {
		doubled[i] *= 2
	}
	patched, found, err := models.ReplaceFloatInitializer(model, schemas.ModelInitTypeWeights, doubled)
	if err != nil || !found {
		t.Fatalf("replace type_weights: found=%v err=%v", found, err)
	}
	same, found, err := models.ReplaceFloatInitializer(model, "no_such_initializer", doubled)
	if err != nil || found || string(same) != string(model) {
		t.Fatalf("replace of a missing initializer: found=%v err=%v changed=%v", found, err, string(same) != string(model))
	}
	in, out := scorertest.ContractNames()
	sess, err := rt.NewSession(patched, in, out, onnxruntime.SessionOptions{})
	if err != nil {
		t.Fatalf("session on patched model: %v", err)
	}
	defer sess.Destroy()
	run := scorertest.GraphRun{B: 1, D: d, L: l, M: 1, K: 3, State: make([]float32, d),
		Items: []int64{7}, Types: []int64{2}, Decays: []float32{1}, Exclude: []int64{0}}
	newS, _, _ := scorertest.RunGraph(t, sess, run)
	for j := range d {
		if want := tower.Emb[7*d+j] * doubled[2]; newS[j] != want {
			t.Fatalf("state[%d] = %g, want %g (patched weight %g)", j, newS[j], want, doubled[2])
		}
	}
}

func TestUserTowerGraphValidate(t *testing.T) {
	good := func() *models.UserTowerGraph {
		return &models.UserTowerGraph{Dim: 2, Steps: 1, TopK: 1,
			ItemEmbeddings: []float32{0, 0, 1, 2}, TypeWeights: []float32{0, 1}, ItemPrior: []float32{-1e9, 0}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good graph: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(g *models.UserTowerGraph)
		want   string
	}{
		{"dim", func(g *models.UserTowerGraph) { g.Dim = 0 }, "dim: must be > 0"},
		{"steps", func(g *models.UserTowerGraph) { g.Steps = 0 }, "steps: must be > 0"},
		{"top_k", func(g *models.UserTowerGraph) { g.TopK = -1 }, "top_k: must be > 0"},
		{"ragged", func(g *models.UserTowerGraph) { g.ItemEmbeddings = g.ItemEmbeddings[:3] }, "whole number of rows"},
		{"only padding", func(g *models.UserTowerGraph) { g.ItemEmbeddings = g.ItemEmbeddings[:2]; g.ItemPrior = g.ItemPrior[:1] }, "at least one item"},
		{"row 0", func(g *models.UserTowerGraph) { g.ItemEmbeddings[1] = 1 }, "row 0 (padding)"},
		{"prior", func(g *models.UserTowerGraph) { g.ItemPrior = g.ItemPrior[:1] }, "item prior"},
		{"weight 0", func(g *models.UserTowerGraph) { g.TypeWeights[0] = 1 }, "index 0 (padding) must be 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := good()
			tc.change(g)
			err := g.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := models.BuildUserTower(g); err == nil {
				t.Fatal("BuildUserTower accepted an invalid graph")
			}
		})
	}
}

// TestUserTowerRowsIndependentOfBatch runs one user's row alone, and at
// various positions of runs of various sizes B, with 1 and with the default
// number of threads: its new_state and top-K must be the same bits. This is
// what makes records independent of how users are batched (ONNX Runtime's
// MLAS GEMM computes each output row the same way whatever M and threads).
func TestUserTowerRowsIndependentOfBatch(t *testing.T) {
	rt := scorertest.OpenRuntime(t)
	const n, d, l, m, k = 10_000, 64, 8, 4, 20
	tower := scorertest.TowerFromSpec(t, scorertest.Spec(n, d, 21))
	model := buildTower(t, tower, l, k)
	in, out := scorertest.ContractNames()
	user := scorertest.RandomRun(rand.New(rand.NewPCG(8, 8)), 8, d, l, m, n, 5) // row 7 has 7 events
	row := 7
	var refS, refT []float32
	var refI []int64
	for _, threads := range []int{1, 0} {
		sess, err := rt.NewSession(model, in, out, onnxruntime.SessionOptions{IntraOpThreads: threads})
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		for _, tc := range []struct{ b, pos int }{{1, 0}, {2, 1}, {3, 1}, {7, 6}, {16, 9}, {257, 256}, {300, 123}, {1024, 1000}} {
			run := scorertest.RandomRun(rand.New(rand.NewPCG(uint64(tc.b), 1)), tc.b, d, l, m, n, 5)
			run.K = k
			copy(run.State[tc.pos*d:], user.State[row*d:(row+1)*d])
			copy(run.Items[tc.pos*l:], user.Items[row*l:(row+1)*l])
			copy(run.Types[tc.pos*l:], user.Types[row*l:(row+1)*l])
			copy(run.Decays[tc.pos*l:], user.Decays[row*l:(row+1)*l])
			copy(run.Exclude[tc.pos*m:], user.Exclude[row*m:(row+1)*m])
			newS, scores, items := scorertest.RunGraph(t, sess, run)
			gotS, gotT, gotI := newS[tc.pos*d:(tc.pos+1)*d], scores[tc.pos*k:(tc.pos+1)*k], items[tc.pos*k:(tc.pos+1)*k]
			if refS == nil {
				refS, refT, refI = slices.Clone(gotS), slices.Clone(gotT), slices.Clone(gotI)
				continue
			}
			if !slices.Equal(gotI, refI) {
				t.Fatalf("threads=%d B=%d pos=%d: top items %v, alone %v", threads, tc.b, tc.pos, gotI, refI)
			}
			for j := range refS {
				if math.Float32bits(gotS[j]) != math.Float32bits(refS[j]) {
					t.Fatalf("threads=%d B=%d pos=%d: new_state[%d] differs in its bits", threads, tc.b, tc.pos, j)
				}
			}
			for j := range refT {
				if math.Float32bits(gotT[j]) != math.Float32bits(refT[j]) {
					t.Fatalf("threads=%d B=%d pos=%d: top_scores[%d] = %x, alone %x", threads, tc.b, tc.pos, j, math.Float32bits(gotT[j]), math.Float32bits(refT[j]))
				}
			}
		}
		sess.Destroy()
	}
}
