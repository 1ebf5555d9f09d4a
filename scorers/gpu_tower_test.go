package scorers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/cuda"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
	"github.com/recstream/recstream/scorers/state"
)

// gpuAvailable opens and closes the GPU once: nil when one can be used.
func gpuAvailable() error {
	d, err := cuda.Open(cuda.Options{})
	if err != nil {
		return err
	}
	return d.Close()
}

// TestScorerDeviceSelection checks each device setting on this machine:
// without a GPU, auto falls back to CPU and says why, and cuda refuses to
// start naming the missing library; with one, both score on it, and a
// model the GPU cannot run is refused under cuda and moved to CPU under
// auto.
func TestScorerDeviceSelection(t *testing.T) {
	tower := scorertest.WriteModel(t, scorertest.Spec(50, 8, 41))
	seq := scorertest.WriteSequenceModel(t, scorertest.SequenceSpec(50, 8, 42, 4, false))
	gpuErr := gpuAvailable()
	t.Logf("GPU: %v", cmpOrErr(gpuErr))

	cpu := newTestScorer(t, Config{ModelDir: tower, Device: DeviceCPU})
	if cpu.Device() != DeviceCPU {
		t.Fatalf("device cpu scored on %s", cpu.Device())
	}

	core, logs := observer.New(zap.InfoLevel)
	auto, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: tower}, zap.New(core))
	if err != nil {
		t.Fatalf("device auto: %v", err)
	}
	defer auto.Close()
	cudaScorer, cudaErr := NewScorer(Config{Recommender: RecommenderModel, ModelDir: tower, Device: DeviceCUDA}, nil)
	if cudaErr == nil {
		defer cudaScorer.Close()
	}
	if gpuErr != nil {
		if auto.Device() != DeviceCPU {
			t.Fatalf("auto without a GPU scored on %s", auto.Device())
		}
		fallback := logs.FilterMessage("device auto: no usable GPU, scoring on CPU with ONNX Runtime").All()
		if len(fallback) != 1 || !strings.Contains(fallback[0].ContextMap()["reason"].(string), gpuErr.Error()) {
			t.Fatalf("auto fell back without saying why: %v", logs.All())
		}
		if cudaErr == nil || !strings.HasPrefix(strings.TrimPrefix(cudaErr.Error(), "new scorer: "), "device cuda: ") {
			t.Fatalf("device cuda without a GPU = %v, want a start-up error starting with device cuda:", cudaErr)
		}
		if errors.Is(gpuErr, cuda.ErrLibraryNotFound) && strings.Contains(gpuErr.Error(), "libcuda.so.1") &&
			!strings.Contains(cudaErr.Error(), "device cuda: libcuda.so.1 not found") {
			t.Fatalf("device cuda without the driver = %v, want it to say libcuda.so.1 not found", cudaErr)
		}
		return
	}
	if cudaErr != nil || cudaScorer.Device() != DeviceCUDA || auto.Device() != DeviceCUDA {
		t.Fatalf("with a GPU: cuda %v, auto on %s", cudaErr, auto.Device())
	}
	seqAuto := newTestScorer(t, Config{ModelDir: seq})
	if seqAuto.Device() != DeviceCPU {
		t.Fatalf("a sequence model under auto runs on %s, want cpu", seqAuto.Device())
	}
	if s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: seq, Device: DeviceCUDA}, nil); err == nil {
		s.Close()
		t.Fatal("device cuda took a sequence model")
	} else if !strings.Contains(err.Error(), "cannot run on the GPU") {
		t.Fatalf("device cuda with a sequence model = %v", err)
	}
}

func cmpOrErr(err error) string {
	if err == nil {
		return "present"
	}
	return err.Error()
}

// TestGPUTowerUpdateMatchesGraph checks that the Go state update of the GPU
// path computes bit for bit what ONNX Runtime computes with the built-in
// graph (so states do not depend on the device), and that the item table
// and prior read back out of the model are the ones written.
func TestGPUTowerUpdateMatchesGraph(t *testing.T) {
	rt := scorertest.OpenRuntime(t)
	const n, d, l, b = 300, 24, 5, 40
	spec := scorertest.Spec(n, d, 43)
	tower := scorertest.TowerFromSpec(t, spec)
	model, err := models.BuildUserTower(&models.UserTowerGraph{Dim: d, Steps: l, TopK: 10,
		ItemEmbeddings: tower.Emb, TypeWeights: tower.Weights, ItemPrior: tower.Prior})
	if err != nil {
		t.Fatal(err)
	}
	dims, emb, ok, err := models.ReadFloatInitializer(model, schemas.ModelInitItemEmbeddings)
	if err != nil || !ok || !slices.Equal(dims, []int64{n + 1, d}) || !slices.Equal(emb, tower.Emb) {
		t.Fatalf("item embeddings read back: dims %v, ok %v, equal %v, %v", dims, ok, slices.Equal(emb, tower.Emb), err)
	}
	_, prior, ok, err := models.ReadFloatInitializer(model, schemas.ModelInitItemPrior)
	if err != nil || !ok || !slices.Equal(prior, tower.Prior) {
		t.Fatalf("prior read back: ok %v, %v", ok, err)
	}
	if _, _, ok, err := models.ReadFloatInitializer(model, "nope"); ok || err != nil {
		t.Fatalf("a missing initializer: ok %v, %v", ok, err)
	}

	in, out := scorertest.ContractNames()
	sess, err := rt.NewSession(model, in, out, onnxruntime.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	r := rand.New(rand.NewPCG(44, 45))
	run := scorertest.RandomRun(r, b, d, l, 4, n, len(tower.Weights)-1)
	run.K = 10
	for i := range run.Decays { // decays that underflow states, and padding
		switch r.IntN(5) {
		case 0:
			run.Decays[i] = float32(math.Ldexp(1, -r.IntN(140)))
		case 1:
			run.Items[i], run.Types[i], run.Decays[i] = 0, 0, 1
		}
	}
	newS, _, _ := scorertest.RunGraph(t, sess, run)
	g := &gpuTower{dim: d, emb: tower.Emb, weights: tower.Weights}
	for u := range b {
		state := slices.Clone(run.State[u*d : (u+1)*d])
		g.update(state, run.Items[u*l:(u+1)*l], run.Types[u*l:(u+1)*l], run.Decays[u*l:(u+1)*l])
		for j, v := range state {
			if math.Float32bits(v) != math.Float32bits(newS[u*d+j]) {
				t.Fatalf("user %d state[%d]: Go %x, ONNX Runtime %x", u, j, math.Float32bits(v), math.Float32bits(newS[u*d+j]))
			}
		}
	}
}

// TestScorerGPUMatchesCPU scores the same batches on CPU and GPU: the
// states are bit-identical (the update is the same float operations), and
// the recommendations agree (same items, ties within 1e-4 may swap; scores
// within 1e-4). It runs wherever a GPU is; without the GPU libraries it
// skips, saying so.
func TestScorerGPUMatchesCPU(t *testing.T) {
	if err := gpuAvailable(); errors.Is(err, cuda.ErrLibraryNotFound) {
		t.Skipf("no GPU library on this machine, CPU-vs-GPU comparison not run: %v", err)
	} else if err != nil {
		t.Fatalf("GPU libraries present but unusable: %v", err)
	}
	compareWithCPU(t, Config{Device: DeviceCUDA, BatchUsers: 64})
}

// TestScorerGPUPathWithGoRanker runs the scorer's GPU path (Go state
// update, users in chunks, exclude lists, results) with a plain Go ranker
// standing in for the GPU's, on any machine, against the CPU path.
func TestScorerGPUPathWithGoRanker(t *testing.T) {
	made := 0
	compareWithCPU(t, Config{BatchUsers: 7, rankerForTest: func(c cuda.TopKConfig) (topKRanker, error) {
		made++
		return &goRanker{cfg: c}, nil
	}})
	if made != 1 {
		t.Fatalf("%d rankers made, want 1", made)
	}
}

// compareWithCPU scores random batches with a CPU scorer and one on the
// GPU path (gpuCfg, ModelDir set here) and requires bit-identical states
// and agreeing records.
func compareWithCPU(t *testing.T, gpuCfg Config) {
	const n, d = 5000, 64
	spec := scorertest.Spec(n, d, 46)
	dir := scorertest.WriteModel(t, spec)
	cpu := newTestScorer(t, Config{ModelDir: dir, Device: DeviceCPU})
	gpuCfg.ModelDir = dir
	gpu := newTestScorer(t, gpuCfg)
	if gpu.Device() != DeviceCUDA {
		t.Fatalf("the GPU path scored on %s", gpu.Device())
	}
	r := rand.New(rand.NewPCG(47, 48))
	off := int64(0)
	compared, excluded := 0, 0
	for batch := range 12 {
		var evs []testEvent
		for range 50 + r.IntN(300) {
			evs = append(evs, testEvent{user: fmt.Sprintf("user-%03d", r.IntN(200)), item: fmt.Sprintf("i%04d", r.IntN(n)),
				typ: uint8(r.IntN(5)), ts: 1_700_000_000_000 + off*60_000, offset: off})
			off++
		}
		want, got := score(t, cpu, evs), score(t, gpu, evs)
		if len(got) != len(want) {
			t.Fatalf("batch %d: %d records on the GPU path, %d on CPU", batch, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.UserID != w.UserID || g.Version != w.Version || g.ModelVersion != w.ModelVersion || g.EventTsMs != w.EventTsMs || len(g.Items) != len(w.Items) {
				t.Fatalf("batch %d: record %d differs:\nGPU %+v\nCPU %+v", batch, i, g, w)
			}
			for j := range w.Items {
				if math.Abs(float64(g.Scores[j]-w.Scores[j])) > 1e-4 {
					t.Fatalf("%s rank %d: GPU score %g, CPU %g", w.UserID, j, g.Scores[j], w.Scores[j])
				}
				if g.Items[j] != w.Items[j] {
					k := slices.Index(w.Items, g.Items[j])
					if k < 0 || math.Abs(float64(w.Scores[k]-w.Scores[j])) > 1e-4 {
						t.Fatalf("%s rank %d: GPU item %s, CPU %s", w.UserID, j, g.Items[j], w.Items[j])
					}
				}
			}
			u, _ := gpu.Store().Get(g.UserID)
			for _, b := range u.Bought {
				if slices.Contains(g.Items, gpu.Model().ItemID(int64(b))) {
					t.Fatalf("%s: bought item %d recommended on the GPU path", g.UserID, b)
				}
			}
			excluded += len(u.Bought)
			compared++
		}
	}
	cpu.Store().Each(func(w state.UserState) bool {
		g, _ := gpu.Store().Get(w.UserID)
		for j := range w.State {
			if math.Float32bits(g.State[j]) != math.Float32bits(w.State[j]) {
				t.Fatalf("%s state[%d]: GPU %x, CPU %x", w.UserID, j, math.Float32bits(g.State[j]), math.Float32bits(w.State[j]))
			}
		}
		return true
	})
	if excluded == 0 {
		t.Fatal("no user bought anything: the exclusions were not exercised")
	}
	t.Logf("%d records agree between CPU and the GPU path", compared)
}

// goRanker is cuda.TopKScorer's computation in plain Go.
type goRanker struct {
	cfg    cuda.TopKConfig
	closed bool
}

func (g *goRanker) Score(states []float32, exclude []int32, rows int, topS []float32, topI []int32) error {
	if g.closed {
		return errors.New("go ranker: closed")
	}
	if rows > g.cfg.MaxRows {
		return fmt.Errorf("go ranker: %d rows, max %d", rows, g.cfg.MaxRows)
	}
	d, k, m := g.cfg.Dim, g.cfg.K, g.cfg.MaxExclude
	n1 := len(g.cfg.Items) / d
	all := make([]float32, n1)
	for u := range rows {
		state := states[u*d : (u+1)*d]
		for i := range n1 {
			var dot float32
			for j, v := range state {
				dot += v * g.cfg.Items[i*d+j]
			}
			all[i] = dot + g.cfg.Prior[i]
		}
		all[0] = cuda.MaskedScore
		for _, x := range exclude[u*m : (u+1)*m] {
			if x > 0 {
				all[x] = cuda.MaskedScore
			}
		}
		taken := make([]bool, n1)
		for r := range k {
			best := -1
			for i := range n1 {
				if !taken[i] && (best < 0 || all[i] > all[best]) {
					best = i
				}
			}
			taken[best] = true
			topS[u*k+r], topI[u*k+r] = all[best], int32(best)
		}
	}
	return nil
}

func (g *goRanker) Close() error { g.closed = true; return nil }

func TestMaskedScoreMatchesContract(t *testing.T) {
	if cuda.MaskedScore != schemas.ModelMaskedScore {
		t.Fatalf("cuda.MaskedScore %g, contract %g", cuda.MaskedScore, schemas.ModelMaskedScore)
	}
}

// BenchmarkScoreDevice measures Score end to end on CPU and on the GPU
// (10,000 and 100,000 items, D=64, top-20, one event per user), in
// refreshes/s. The GPU cases skip, saying so, on a machine without the GPU
// libraries.
func BenchmarkScoreDevice(b *testing.B) {
	gpuErr := gpuAvailable()
	for _, items := range []int{benchItems, 10 * benchItems} {
		dir := scorertest.WriteModel(b, scorertest.Spec(items, benchDim, 1))
		for _, device := range []string{DeviceCPU, DeviceCUDA} {
			for _, users := range []int{256, 1024, 4096} {
				b.Run(fmt.Sprintf("items=%d/device=%s/B=%d", items, device, users), func(b *testing.B) {
					if device == DeviceCUDA && errors.Is(gpuErr, cuda.ErrLibraryNotFound) {
						b.Skipf("no GPU library on this machine: %v", gpuErr)
					}
					s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir, Device: device}, nil)
					if err != nil {
						b.Fatalf("new scorer: %v", err)
					}
					defer s.Close()
					benchScore(b, s, users)
				})
			}
		}
	}
}

// benchScore runs b.N batches of users distinct users (one event each, 20
// x users users in all) through s and reports refreshes/s.
func benchScore(b *testing.B, s *Scorer, users int) { benchScoreWith(b, s, users, nil) }

// benchScoreWith is benchScore with pause, when not nil, run after each
// batch with the timer stopped.
func benchScoreWith(b *testing.B, s *Scorer, users int, pause func()) {
	r := rand.New(rand.NewPCG(1, 2))
	evs := make([]testEvent, users)
	offset := int64(0)
	next := func() *schemas.EventBatch {
		for i := range evs {
			evs[i] = testEvent{user: fmt.Sprintf("user-%06d", offset%int64(20*users)), item: fmt.Sprintf("i%04d", r.IntN(benchItems)),
				typ: uint8(r.IntN(4)), ts: 1_700_000_000_000 + offset*1000, offset: offset}
			offset++
		}
		return makeBatch(b, evs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		batch := next()
		b.StartTimer()
		out, err := s.Score(context.Background(), batch)
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
		b.StopTimer()
		batch.Release()
		if pause != nil {
			pause()
		}
		b.StartTimer()
	}
	reportRefreshes(b, users)
}

// instantRanker answers every row with items 1..K at falling scores and
// costs nothing, so that a benchmark through it measures the GPU path's
// host side alone: grouping, the state update in Go, exclusions, records.
type instantRanker struct{ k int }

func (r instantRanker) Score(_ []float32, _ []int32, rows int, topS []float32, topI []int32) error {
	for u := range rows {
		for j := range r.k {
			topS[u*r.k+j], topI[u*r.k+j] = float32(r.k-j), int32(j+1)
		}
	}
	return nil
}

func (instantRanker) Close() error { return nil }

// BenchmarkScoreHostSide is BenchmarkScoreDevice's GPU case with a ranker
// that takes no time: the refreshes/s the host can feed a GPU at most.
func BenchmarkScoreHostSide(b *testing.B) {
	dir := scorertest.WriteModel(b, scorertest.Spec(benchItems, benchDim, 1))
	for _, users := range []int{256, 1024, 4096} {
		b.Run(fmt.Sprintf("B=%d", users), func(b *testing.B) {
			s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir, rankerForTest: func(c cuda.TopKConfig) (topKRanker, error) {
				return instantRanker{k: c.K}, nil
			}}, nil)
			if err != nil {
				b.Fatalf("new scorer: %v", err)
			}
			defer s.Close()
			benchScore(b, s, users)
		})
	}
}
