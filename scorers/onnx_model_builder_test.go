package scorers

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/schemas"
)

// buildTower returns the ONNX graph of tower.
func buildTower(t *testing.T, tower *referenceTower, steps, topK int) []byte {
	t.Helper()
	model, err := BuildUserTower(&UserTowerGraph{
		Dim: tower.dim, Steps: steps, TopK: topK,
		ItemEmbeddings: tower.emb, TypeWeights: tower.weights, ItemPrior: tower.prior,
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return model
}

// randomRun returns b users' inputs: user i has min(i, l) real events
// (the rest padding), random states and up to m exclusions.
func randomRun(r *rand.Rand, b, d, l, m, n, types int) graphRun {
	in := graphRun{b: b, d: d, l: l, m: m,
		state: make([]float32, b*d), items: make([]int64, b*l), types: make([]int64, b*l),
		decays: make([]float32, b*l), exclude: make([]int64, b*m)}
	for i := range b {
		for j := range d {
			in.state[i*d+j] = float32(r.NormFloat64())
		}
		for s := range l {
			p := i*l + s
			if s < i {
				in.items[p] = int64(1 + r.IntN(n))
				in.types[p] = int64(1 + r.IntN(types))
				in.decays[p] = float32(r.Float64())
			} else {
				in.decays[p] = 1
			}
		}
		for x := range r.IntN(m + 1) {
			in.exclude[i*m+x] = int64(1 + r.IntN(n))
		}
	}
	return in
}

func TestUserTowerMatchesReference(t *testing.T) {
	rt := openTestRuntime(t)
	const n, d, l, m, k = 500, 32, 8, 6, 20
	spec := testSpec(n, d, 1)
	tower := towerFromSpec(t, spec)
	in, out := contractNames()
	sess, err := rt.newSession(buildTower(t, tower, l, k), in, out, sessionOptions{})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Destroy()

	r := rand.New(rand.NewPCG(3, 4))
	run := randomRun(r, 11, d, l, m, n, 5)
	run.k = k
	newS, scores, items := runGraph(t, sess, run)

	wantScores := make([]float32, k)
	wantItems := make([]int64, k)
	for u := range run.b {
		state := slices.Clone(run.state[u*d : (u+1)*d])
		tower.update(state, run.items[u*l:(u+1)*l], run.types[u*l:(u+1)*l], run.decays[u*l:(u+1)*l])
		for j := range d {
			got := newS[u*d+j]
			if math.Abs(float64(got-state[j])) > 1e-5 {
				t.Fatalf("user %d: new_state[%d] = %g, reference %g", u, j, got, state[j])
			}
			if math.Float32bits(got) != math.Float32bits(state[j]) {
				t.Errorf("user %d: new_state[%d] = %x, reference %x: the update is not bit-exact", u, j, math.Float32bits(got), math.Float32bits(state[j]))
			}
		}
		tower.topK(state, run.exclude[u*m:(u+1)*m], k, wantScores, wantItems)
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
	rt := openTestRuntime(t)
	const n, d, l, m = 5, 4, 2, 3
	spec := testSpec(n, d, 2)
	tower := towerFromSpec(t, spec)
	in, out := contractNames()
	// K=20 > N+1: the graph caps K at 6, so index 0 and the excluded items
	// must come out last with the masked score.
	model := buildTower(t, tower, l, 20)
	sess, err := rt.newSession(model, in, out, sessionOptions{})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Destroy()
	run := graphRun{b: 1, d: d, l: l, m: m, k: n + 1,
		state:   []float32{0, 0, 0, 0},
		items:   []int64{0, 0},
		types:   []int64{0, 0},
		decays:  []float32{1, 1},
		exclude: []int64{1, 0, 3}, // the two most popular; 0 is padding
	}
	_, scores, items := runGraph(t, sess, run)
	wantItems := []int64{2, 4, 5}
	if !slices.Equal(items[:3], wantItems) {
		t.Fatalf("cold user top items = %v, want popularity order %v first", items, wantItems)
	}
	for j, it := range items[:3] {
		if scores[j] != tower.prior[it] {
			t.Errorf("cold user score of item %d = %g, want its prior %g", it, scores[j], tower.prior[it])
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
	rt := openTestRuntime(t)
	const n, d, l = 50, 16, 4
	spec := testSpec(n, d, 3)
	tower := towerFromSpec(t, spec)
	in, out := contractNames()
	sess, err := rt.newSession(buildTower(t, tower, l, 5), in, out, sessionOptions{})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Destroy()
	r := rand.New(rand.NewPCG(5, 6))
	run := graphRun{b: 3, d: d, l: l, m: 1, k: 5,
		state: make([]float32, 3*d), items: make([]int64, 3*l), types: make([]int64, 3*l),
		decays: make([]float32, 3*l), exclude: make([]int64, 3)}
	for i := range run.state {
		run.state[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30)))
	}
	run.state[0] = float32(math.Copysign(0, -1)) // -0 may come back as +0, nothing else may change
	for i := range run.decays {
		run.decays[i] = 1
	}
	newS, _, _ := runGraph(t, sess, run)
	for i, v := range newS {
		want := run.state[i]
		if i == 0 {
			want = 0
		}
		if math.Float32bits(v) != math.Float32bits(want) {
			t.Fatalf("padding changed state[%d]: %x -> %x", i, math.Float32bits(run.state[i]), math.Float32bits(v))
		}
	}
}

func TestReplaceFloatInitializer(t *testing.T) {
	rt := openTestRuntime(t)
	const n, d, l = 20, 8, 1
	tower := towerFromSpec(t, testSpec(n, d, 4))
	model := buildTower(t, tower, l, 3)
	doubled := slices.Clone(tower.weights)
	for i := range doubled {
		doubled[i] *= 2
	}
	patched, found, err := replaceFloatInitializer(model, schemas.ModelInitTypeWeights, doubled)
	if err != nil || !found {
		t.Fatalf("replace type_weights: found=%v err=%v", found, err)
	}
	same, found, err := replaceFloatInitializer(model, "no_such_initializer", doubled)
	if err != nil || found || string(same) != string(model) {
		t.Fatalf("replace of a missing initializer: found=%v err=%v changed=%v", found, err, string(same) != string(model))
	}
	in, out := contractNames()
	sess, err := rt.newSession(patched, in, out, sessionOptions{})
	if err != nil {
		t.Fatalf("session on patched model: %v", err)
	}
	defer sess.Destroy()
	run := graphRun{b: 1, d: d, l: l, m: 1, k: 3, state: make([]float32, d),
		items: []int64{7}, types: []int64{2}, decays: []float32{1}, exclude: []int64{0}}
	newS, _, _ := runGraph(t, sess, run)
	for j := range d {
		if want := tower.emb[7*d+j] * doubled[2]; newS[j] != want {
			t.Fatalf("state[%d] = %g, want %g (patched weight %g)", j, newS[j], want, doubled[2])
		}
	}
}

func TestUserTowerGraphValidate(t *testing.T) {
	good := func() *UserTowerGraph {
		return &UserTowerGraph{Dim: 2, Steps: 1, TopK: 1,
			ItemEmbeddings: []float32{0, 0, 1, 2}, TypeWeights: []float32{0, 1}, ItemPrior: []float32{-1e9, 0}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good graph: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(g *UserTowerGraph)
		want   string
	}{
		{"dim", func(g *UserTowerGraph) { g.Dim = 0 }, "dim: must be > 0"},
		{"steps", func(g *UserTowerGraph) { g.Steps = 0 }, "steps: must be > 0"},
		{"top_k", func(g *UserTowerGraph) { g.TopK = -1 }, "top_k: must be > 0"},
		{"ragged", func(g *UserTowerGraph) { g.ItemEmbeddings = g.ItemEmbeddings[:3] }, "whole number of rows"},
		{"only padding", func(g *UserTowerGraph) { g.ItemEmbeddings = g.ItemEmbeddings[:2]; g.ItemPrior = g.ItemPrior[:1] }, "at least one item"},
		{"row 0", func(g *UserTowerGraph) { g.ItemEmbeddings[1] = 1 }, "row 0 (padding)"},
		{"prior", func(g *UserTowerGraph) { g.ItemPrior = g.ItemPrior[:1] }, "item prior"},
		{"weight 0", func(g *UserTowerGraph) { g.TypeWeights[0] = 1 }, "index 0 (padding) must be 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := good()
			tc.change(g)
			err := g.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := BuildUserTower(g); err == nil {
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
	rt := openTestRuntime(t)
	const n, d, l, m, k = 10_000, 64, 8, 4, 20
	tower := towerFromSpec(t, testSpec(n, d, 21))
	model := buildTower(t, tower, l, k)
	in, out := contractNames()
	user := randomRun(rand.New(rand.NewPCG(8, 8)), 8, d, l, m, n, 5) // row 7 has 7 events
	row := 7
	var refS, refT []float32
	var refI []int64
	for _, threads := range []int{1, 0} {
		sess, err := rt.newSession(model, in, out, sessionOptions{IntraOpThreads: threads})
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		for _, tc := range []struct{ b, pos int }{{1, 0}, {2, 1}, {3, 1}, {7, 6}, {16, 9}, {257, 256}, {300, 123}, {1024, 1000}} {
			run := randomRun(rand.New(rand.NewPCG(uint64(tc.b), 1)), tc.b, d, l, m, n, 5)
			run.k = k
			copy(run.state[tc.pos*d:], user.state[row*d:(row+1)*d])
			copy(run.items[tc.pos*l:], user.items[row*l:(row+1)*l])
			copy(run.types[tc.pos*l:], user.types[row*l:(row+1)*l])
			copy(run.decays[tc.pos*l:], user.decays[row*l:(row+1)*l])
			copy(run.exclude[tc.pos*m:], user.exclude[row*m:(row+1)*m])
			newS, scores, items := runGraph(t, sess, run)
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
