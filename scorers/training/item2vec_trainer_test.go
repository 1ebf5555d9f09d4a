package training

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/scorers/models"
)

// clusteredHistory returns sessions of users who each browse one cluster
// of items per session (sessions an hour apart, so a user's different
// clusters are never each other's context), plus search events without an
// item and add-to-cart events of a skipped type.
func clusteredHistory(clusters, perCluster, users int, seed uint64) []Interaction {
	r := rand.New(rand.NewPCG(seed, 1))
	var evs []Interaction
	for u := range users {
		ts := int64(1_700_000_000_000) + int64(r.IntN(1e6))
		user := fmt.Sprintf("user-%03d", u)
		for range 5 {
			c := r.IntN(clusters)
			for range 10 {
				item := fmt.Sprintf("c%d-item%02d", c, r.IntN(perCluster))
				evs = append(evs, Interaction{User: user, Item: item, Type: 0, TsMs: ts})
				ts += int64(10_000 + r.IntN(60_000))
			}
			evs = append(evs, Interaction{User: user, Type: 4, TsMs: ts}) // search
			ts += int64(time.Hour / time.Millisecond)
		}
		// A skipped type must not link clusters.
		evs = append(evs, Interaction{User: user, Item: "c0-item00", Type: 2, TsMs: ts},
			Interaction{User: user, Item: "c1-item00", Type: 2, TsMs: ts + 1})
	}
	// Interleave users as a real log would; the trainer sorts.
	r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func TestItem2VecLearnsClusters(t *testing.T) {
	const clusters, perCluster = 6, 15
	evs := clusteredHistory(clusters, perCluster, 300, 1)
	cfg := Item2VecConfig{Dim: 16, Seed: 7, SkipTypes: []uint8{2}}
	var calls, last int
	res, err := TrainItem2Vec(context.Background(), evs, cfg, func(done, total int) {
		if done < last || done > total {
			t.Errorf("progress went from %d to %d of %d", last, done, total)
		}
		calls++
		last = done
	})
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	if calls < 2 || last != 5*res.Sequences {
		t.Errorf("progress called %d times, last %d; want several, ending at %d", calls, last, 5*res.Sequences)
	}
	if len(res.Items) != clusters*perCluster || len(res.Embeddings) != len(res.Items) || len(res.Counts) != len(res.Items) {
		t.Fatalf("%d items, %d embeddings, %d counts; want %d", len(res.Items), len(res.Embeddings), len(res.Counts), clusters*perCluster)
	}
	for i := 1; i < len(res.Counts); i++ {
		if res.Counts[i] > res.Counts[i-1] {
			t.Fatalf("items not ordered by count: %d then %d", res.Counts[i-1], res.Counts[i])
		}
	}
	var total int64
	for _, c := range res.Counts {
		total += c
	}
	if total != 300*5*10 {
		t.Errorf("counted %d interactions, want %d (searches and skipped types excluded)", total, 300*5*10)
	}
	cluster := func(id string) string { return strings.SplitN(id, "-", 2)[0] }
	var intra, inter float64
	var nIntra, nInter, nnSame int
	for i, a := range res.Embeddings {
		if n := cosine(a, a); math.Abs(n-1) > 1e-5 {
			t.Fatalf("embedding %d has norm^2 %g, want 1", i, n)
		}
		best, bestSim := -1, -2.0
		for j, b := range res.Embeddings {
			if i == j {
				continue
			}
			sim := cosine(a, b)
			if cluster(res.Items[i]) == cluster(res.Items[j]) {
				intra += sim
				nIntra++
			} else {
				inter += sim
				nInter++
			}
			if sim > bestSim {
				best, bestSim = j, sim
			}
		}
		if cluster(res.Items[best]) == cluster(res.Items[i]) {
			nnSame++
		}
	}
	intra /= float64(nIntra)
	inter /= float64(nInter)
	t.Logf("mean cosine within clusters %.3f, across %.3f; nearest neighbour in the same cluster for %d/%d items; %d pairs",
		intra, inter, nnSame, len(res.Items), res.Pairs)
	if intra < inter+0.3 {
		t.Errorf("same-cluster items are not nearer: within %.3f, across %.3f", intra, inter)
	}
	if nnSame < len(res.Items)*95/100 {
		t.Errorf("only %d of %d items have their nearest neighbour in their cluster", nnSame, len(res.Items))
	}
}

func TestItem2VecIsDeterministic(t *testing.T) {
	evs := clusteredHistory(3, 10, 40, 2)
	train := func(seed uint64) *Item2VecResult {
		res, err := TrainItem2Vec(context.Background(), evs, Item2VecConfig{Dim: 8, Epochs: 2, Seed: seed}, nil)
		if err != nil {
			t.Fatalf("train: %v", err)
		}
		return res
	}
	a, b, c := train(1), train(1), train(2)
	if !slices.Equal(a.Items, b.Items) || a.Pairs != b.Pairs {
		t.Fatal("same seed, different vocabulary or pairs")
	}
	for i := range a.Embeddings {
		for j := range a.Embeddings[i] {
			if math.Float32bits(a.Embeddings[i][j]) != math.Float32bits(b.Embeddings[i][j]) {
				t.Fatalf("same seed, embedding %d differs at %d", i, j)
			}
		}
	}
	if slices.Equal(a.Embeddings[0], c.Embeddings[0]) {
		t.Fatal("another seed gave the same embeddings")
	}
	if a.FromMs > a.ToMs || a.FromMs < 1_700_000_000_000 {
		t.Errorf("data range %d..%d", a.FromMs, a.ToMs)
	}
}

func TestItem2VecErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := TrainItem2Vec(ctx, clusteredHistory(2, 5, 10, 3), Item2VecConfig{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := TrainItem2Vec(context.Background(), []Interaction{{User: "u", TsMs: 1}}, Item2VecConfig{}, nil); !errors.Is(err, ErrNoTrainingData) {
		t.Errorf("no items: %v", err)
	}
	single := []Interaction{{User: "u", Item: "a", TsMs: 1}, {User: "v", Item: "b", TsMs: 1}}
	if _, err := TrainItem2Vec(context.Background(), single, Item2VecConfig{}, nil); !errors.Is(err, ErrNoTrainingData) {
		t.Errorf("no session with two items: %v", err)
	}
	for _, tc := range []struct {
		cfg  Item2VecConfig
		want string
	}{
		{Item2VecConfig{Dim: -1}, "dim: must be in [1, 4096], got -1"},
		{Item2VecConfig{Window: -1}, "window: must be > 0"},
		{Item2VecConfig{Negatives: -1}, "negatives: must be > 0"},
		{Item2VecConfig{Epochs: -1}, "epochs: must be > 0"},
		{Item2VecConfig{LearningRate: 2}, "learning_rate: must be in (0, 1]"},
		{Item2VecConfig{MinCount: -1}, "min_count: must be > 0"},
		{Item2VecConfig{SessionGap: -time.Second}, "session_gap: must be >= 0"},
	} {
		if err := tc.cfg.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestItem2VecFeedsTheScorer trains on a history, writes the model and
// checks that a user who browsed one cluster is recommended that cluster.
func TestItem2VecFeedsTheScorer(t *testing.T) {
	evs := clusteredHistory(4, 12, 200, 4)
	res, err := TrainItem2Vec(context.Background(), evs, Item2VecConfig{Dim: 16, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	items := fanTopItems(t, models.ModelSpec{Items: res.Items, Embeddings: res.Embeddings, Counts: res.Counts,
		TopK: 10, DataFromMs: res.FromMs, DataToMs: res.ToMs, Training: Item2VecConfig{Dim: 16, Seed: 3}})
	inCluster := 0
	for _, id := range items {
		if strings.HasPrefix(id, "c2-") {
			inCluster++
		}
	}
	if inCluster < 9 {
		t.Fatalf("a c2 fan got %d of 10 items from c2: %v", inCluster, items)
	}
}

// BenchmarkTrainItem2Vec measures the trainer on a clustered history
// (about 150k interactions, D=64, one epoch).
func BenchmarkTrainItem2Vec(b *testing.B) {
	evs := clusteredHistory(50, 200, 3000, 9)
	b.ResetTimer()
	var pairs int64
	for range b.N {
		res, err := TrainItem2Vec(context.Background(), evs, Item2VecConfig{Epochs: 1, Seed: 1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		pairs += res.Pairs
	}
	b.ReportMetric(float64(pairs)/b.Elapsed().Seconds(), "pairs/s")
}
