package training

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// factorTrainers are the matrix-factorisation trainers, run through the
// same tests.
var factorTrainers = []struct {
	name  string
	train func(ctx context.Context, evs []Interaction, seed uint64, progress func(done, total int)) (*FactorResult, error)
}{
	{"bpr", func(ctx context.Context, evs []Interaction, seed uint64, progress func(done, total int)) (*FactorResult, error) {
		return TrainBPR(ctx, evs, BPRConfig{Dim: 16, Epochs: 30, Seed: seed}, progress)
	}},
	{"als", func(ctx context.Context, evs []Interaction, seed uint64, progress func(done, total int)) (*FactorResult, error) {
		return TrainALS(ctx, evs, ALSConfig{Dim: 16, Iterations: 8, Seed: seed}, progress)
	}},
	// Exact solves fit this small history's noise (74 of 90 nearest
	// neighbours right at lambda 0.1); three warm-started CG steps per
	// solve regularise implicitly, exact ones need a larger lambda.
	{"als-cholesky", func(ctx context.Context, evs []Interaction, seed uint64, progress func(done, total int)) (*FactorResult, error) {
		return TrainALS(ctx, evs, ALSConfig{Dim: 16, Iterations: 8, Solver: ALSSolverCholesky, Regularization: 20, Seed: seed}, progress)
	}},
}

// TestFactorTrainersLearnClusters: users browse one cluster per session
// (clusteredHistory), so items of a cluster share their users; every
// trainer must put an item's nearest neighbours (by the dot product the
// tower ranks with) in its own cluster.
func TestFactorTrainersLearnClusters(t *testing.T) {
	const clusters, perCluster = 6, 15
	evs := clusteredHistory(clusters, perCluster, 300, 1)
	cluster := func(id string) string { return strings.SplitN(id, "-", 2)[0] }
	for _, tr := range factorTrainers {
		t.Run(tr.name, func(t *testing.T) {
			var calls, last, lastTotal int
			res, err := tr.train(context.Background(), evs, 7, func(done, total int) {
				if done < last || done > total {
					t.Errorf("progress went from %d to %d of %d", last, done, total)
				}
				calls++
				last, lastTotal = done, total
			})
			if err != nil {
				t.Fatalf("train: %v", err)
			}
			if calls < 2 || last != lastTotal {
				t.Errorf("progress called %d times, last %d of %d", calls, last, lastTotal)
			}
			// Type 2 (add_to_cart) has weight 4, search has no item: every
			// item of clusteredHistory is there.
			if len(res.Items) != clusters*perCluster || len(res.Embeddings) != len(res.Items) || len(res.Counts) != len(res.Items) {
				t.Fatalf("%d items, %d embeddings, %d counts; want %d", len(res.Items), len(res.Embeddings), len(res.Counts), clusters*perCluster)
			}
			if res.Users != 300 || res.Pairs == 0 || len(res.Loss) == 0 {
				t.Errorf("users %d, pairs %d, loss %v", res.Users, res.Pairs, res.Loss)
			}
			if l := res.Loss; l[len(l)-1] > l[0] {
				t.Errorf("loss went up: %v", l)
			}
			var norms float64
			for _, row := range res.Embeddings {
				norms += math.Sqrt(dotF32(row, row))
			}
			if mean := norms / float64(len(res.Embeddings)); math.Abs(mean-1) > 1e-3 {
				t.Errorf("mean embedding norm %g, want 1", mean)
			}
			nnSame := 0
			for i, a := range res.Embeddings {
				best, bestDot := -1, math.Inf(-1)
				for j, b := range res.Embeddings {
					if d := dotF32(a, b); i != j && d > bestDot {
						best, bestDot = j, d
					}
				}
				if cluster(res.Items[best]) == cluster(res.Items[i]) {
					nnSame++
				}
			}
			t.Logf("nearest neighbour in the same cluster for %d/%d items; loss %.4g -> %.4g", nnSame, len(res.Items), res.Loss[0], res.Loss[len(res.Loss)-1])
			if nnSame < len(res.Items)*95/100 {
				t.Errorf("only %d of %d items have their nearest neighbour in their cluster", nnSame, len(res.Items))
			}
		})
	}
}

func dotF32(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestFactorTrainersAreDeterministic: the same seed gives the same bits
// (ALS also with another number of workers), another seed other factors.
func TestFactorTrainersAreDeterministic(t *testing.T) {
	evs := clusteredHistory(3, 10, 40, 2)
	same := func(a, b *FactorResult) bool {
		if !slices.Equal(a.Items, b.Items) {
			return false
		}
		for i := range a.Embeddings {
			for j := range a.Embeddings[i] {
				if math.Float32bits(a.Embeddings[i][j]) != math.Float32bits(b.Embeddings[i][j]) {
					return false
				}
			}
		}
		return true
	}
	for _, tr := range factorTrainers {
		t.Run(tr.name, func(t *testing.T) {
			a, err1 := tr.train(context.Background(), evs, 1, nil)
			b, err2 := tr.train(context.Background(), evs, 1, nil)
			c, err3 := tr.train(context.Background(), evs, 2, nil)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatal(err)
			}
			if !same(a, b) {
				t.Fatal("same seed, different embeddings")
			}
			if same(a, c) {
				t.Fatal("another seed gave the same embeddings")
			}
			if a.FromMs > a.ToMs || a.FromMs < 1_700_000_000_000 {
				t.Errorf("data range %d..%d", a.FromMs, a.ToMs)
			}
		})
	}
	one, err1 := TrainALS(context.Background(), evs, ALSConfig{Dim: 8, Iterations: 3, Seed: 5, Workers: 1}, nil)
	four, err2 := TrainALS(context.Background(), evs, ALSConfig{Dim: 8, Iterations: 3, Seed: 5, Workers: 4}, nil)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !same(one, four) {
		t.Fatal("ALS with 1 and 4 workers gave different embeddings")
	}
}

// TestALSSolversAgree: conjugate gradient solves a D x D system exactly in
// D steps, so with CGSteps = D it must follow the Cholesky solver; with
// the default 3 steps (warm-started) the loss must still fall every
// iteration, as it does for the exact solver.
func TestALSSolversAgree(t *testing.T) {
	evs := clusteredHistory(4, 8, 60, 3)
	train := func(solver string, steps int) []float64 {
		res, err := TrainALS(context.Background(), evs, ALSConfig{Dim: 8, Iterations: 15, Solver: solver, CGSteps: steps, Embedding: ALSEmbeddingFactors, Seed: 9}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(res.Loss); i++ {
			if res.Loss[i] > res.Loss[i-1]*(1+1e-9) {
				t.Errorf("%s/%d: loss rose at iteration %d: %v", solver, steps, i, res.Loss)
			}
		}
		return res.Loss
	}
	exact, full, short := train(ALSSolverCholesky, 0), train(ALSSolverCG, 8), train(ALSSolverCG, 3)
	le, lf, ls := exact[len(exact)-1], full[len(full)-1], short[len(short)-1]
	t.Logf("final loss: cholesky %.6g, cg 8 steps %.6g, cg 3 steps %.6g", le, lf, ls)
	if math.Abs(lf-le) > le*0.02 {
		t.Errorf("cg with D steps ends at loss %g, cholesky at %g: more than 2%% apart", lf, le)
	}
	if ls >= exact[0] {
		t.Errorf("cg with 3 steps ends at loss %g, not below the first iteration's %g", ls, exact[0])
	}
}

func TestFactorTrainerErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tr := range factorTrainers {
		if _, err := tr.train(ctx, clusteredHistory(2, 5, 10, 3), 1, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("%s, cancelled context: %v", tr.name, err)
		}
		if _, err := tr.train(context.Background(), []Interaction{{User: "u", TsMs: 1}}, 1, nil); !errors.Is(err, ErrNoTrainingData) {
			t.Errorf("%s, no items: %v", tr.name, err)
		}
	}
	// A type of weight 0 is ignored: nothing is left to train on.
	views := []Interaction{{User: "u", Item: "a", Type: 0, TsMs: 1}}
	if _, err := TrainALS(context.Background(), views, ALSConfig{TypeWeights: map[string]float32{"view": 0}}, nil); !errors.Is(err, ErrNoTrainingData) {
		t.Errorf("only zero-weight types: %v", err)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{BPRConfig{Dim: -1}.WithDefaults().Validate(), "dim: must be in [1, 4096], got -1"},
		{BPRConfig{Epochs: -1}.WithDefaults().Validate(), "epochs: must be > 0"},
		{BPRConfig{LearningRate: 2}.WithDefaults().Validate(), "learning_rate: must be in (0, 1]"},
		{BPRConfig{Regularization: -1}.WithDefaults().Validate(), "regularization: must be in [0, 1)"},
		{BPRConfig{TypeWeights: map[string]float32{"view": -1}}.WithDefaults().Validate(), `type_weights: weight of "view" must be >= 0`},
		{BPRConfig{EventTypes: []string{"teleport"}}.WithDefaults().Validate(), `type_weights: no weight for event type "teleport"`},
		{ALSConfig{Dim: 2000}.WithDefaults().Validate(), "dim: must be in [1, 1024], got 2000"},
		{ALSConfig{Iterations: -2}.WithDefaults().Validate(), "iterations: must be > 0"},
		{ALSConfig{Regularization: -1}.WithDefaults().Validate(), "regularization: must be > 0"},
		{ALSConfig{Alpha: -1}.WithDefaults().Validate(), "alpha: must be > 0"},
		{ALSConfig{Solver: "lu"}.WithDefaults().Validate(), `solver: must be "cg" or "cholesky", got "lu"`},
		{ALSConfig{CGSteps: -1}.WithDefaults().Validate(), "cg_steps: must be > 0"},
		{ALSConfig{Embedding: "users"}.WithDefaults().Validate(), `embedding: must be "fold_in" or "factors"`},
		{ALSConfig{MinCount: -1}.WithDefaults().Validate(), "min_count: must be > 0"},
		{TrainConfig{Method: "svd"}.WithDefaults().Validate(), `method: must be one of [item2vec bpr als], got "svd"`},
		{TrainConfig{Method: MethodALS, ALS: ALSConfig{Alpha: -1}}.WithDefaults().Validate(), "als.alpha: must be > 0"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want %q", tc.err, tc.want)
		}
	}
}

// TestTrainMethodsFeedTheScorer trains each method through Train, writes
// the model and checks that a user who browsed one cluster is recommended
// that cluster by the real scorer: the embeddings work in the user tower.
func TestTrainMethodsFeedTheScorer(t *testing.T) {
	evs := clusteredHistory(4, 12, 200, 4)
	for _, method := range Methods() {
		t.Run(method, func(t *testing.T) {
			cfg := TrainConfig{Method: method}
			cfg.Item2Vec.Dim, cfg.BPR.Dim, cfg.ALS.Dim = 16, 16, 16
			te, err := Train(context.Background(), evs, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if te.Method != method || te.Summary == "" || len(te.Items) != 48 {
				t.Fatalf("method %q, summary %q, %d items", te.Method, te.Summary, len(te.Items))
			}
			spec := te.ModelSpec(cfg.Params())
			spec.TopK = 10
			items := fanTopItems(t, spec)
			inCluster := 0
			for _, id := range items {
				if strings.HasPrefix(id, "c2-") {
					inCluster++
				}
			}
			if inCluster < 9 {
				t.Fatalf("a c2 fan got %d of 10 items from c2: %v", inCluster, items)
			}
		})
	}
}
