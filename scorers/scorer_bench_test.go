package scorers

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
)

// The benchmarks use the shapes of FACTS.md: 10,000 items, D=64, top-20,
// B users per batch, one event per user (the streaming case); the scorer,
// raw session and Go loop benchmarks also run with 100,000 items.
const (
	benchItems = 10_000
	benchDim   = 64
)

// benchItemCounts are the catalogue sizes the scorer benchmarks compare.
var benchItemCounts = []int{benchItems, 10 * benchItems}

func reportRefreshes(b *testing.B, users int) {
	b.ReportMetric(float64(users)*float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

// BenchmarkScore measures Scorer.Score end to end: grouping, state gather
// and scatter, the session run and building the Arrow records.
func BenchmarkScore(b *testing.B) {
	for _, items := range benchItemCounts {
		dir := scorertest.WriteModel(b, scorertest.Spec(items, benchDim, 1))
		for _, tc := range []struct{ users, perRun int }{{256, 0}, {1024, 0}, {1024, 1024}} {
			users := tc.users
			name := fmt.Sprintf("items=%d/B=%d", items, users)
			if tc.perRun != 0 {
				name += fmt.Sprintf("/batch_users=%d", tc.perRun)
			}
			b.Run(name, func(b *testing.B) {
				s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir, BatchUsers: tc.perRun, Device: DeviceCPU}, nil)
				if err != nil {
					b.Fatalf("new scorer (run make setup): %v", err)
				}
				defer s.Close()
				benchScore(b, s, users)
			})
		}
	}
}

// BenchmarkSessionRun measures one raw session run on the same shapes (no
// Go-side work): the ceiling of Score.
func BenchmarkSessionRun(b *testing.B) {
	rt := scorertest.OpenRuntime(b)
	in, out := scorertest.ContractNames()
	for _, items := range benchItemCounts {
		spec := scorertest.Spec(items, benchDim, 1)
		tower := scorertest.TowerFromSpec(b, spec)
		model, err := models.BuildUserTower(&models.UserTowerGraph{Dim: benchDim, Steps: models.DefaultSteps, TopK: models.DefaultTopK,
			ItemEmbeddings: tower.Emb, TypeWeights: tower.Weights, ItemPrior: tower.Prior})
		if err != nil {
			b.Fatal(err)
		}
		sizes := []int{64, 128, 256, 512, 1024}
		if items > benchItems {
			sizes = []int{256, 1024}
		}
		for _, threads := range []int{0, 1} {
			sess, err := rt.NewSession(model, in, out, onnxruntime.SessionOptions{IntraOpThreads: threads})
			if err != nil {
				b.Fatal(err)
			}
			for _, users := range sizes {
				benchSessionRun(b, sess, items, users, threads)
			}
			sess.Destroy()
		}
	}
}

// benchSessionRun is one case of BenchmarkSessionRun: users users with one
// event each through sess, a model of items items.
func benchSessionRun(b *testing.B, sess *ort.DynamicAdvancedSession, items, users, threads int) {
	b.Run(fmt.Sprintf("items=%d/B=%d/threads=%d", items, users, threads), func(b *testing.B) {
		run := scorertest.RandomRun(rand.New(rand.NewPCG(1, 1)), users, benchDim, models.DefaultSteps, DefaultMaxExclude, items, 5)
		for i := range users { // one event per user, the rest padding
			for l := 1; l < models.DefaultSteps; l++ {
				p := i*models.DefaultSteps + l
				run.Items[p], run.Types[p], run.Decays[p] = 0, 0, 1
			}
			run.Items[i*models.DefaultSteps] = int64(1 + i%items)
			run.Types[i*models.DefaultSteps] = 1
		}
		k := int64(models.DefaultTopK)
		bb := int64(users)
		vals := []ort.Value{}
		for _, v := range []func() (ort.Value, error){
			func() (ort.Value, error) { return ort.NewTensor(ort.NewShape(bb, benchDim), run.State) },
			func() (ort.Value, error) { return ort.NewTensor(ort.NewShape(bb, models.DefaultSteps), run.Items) },
			func() (ort.Value, error) { return ort.NewTensor(ort.NewShape(bb, models.DefaultSteps), run.Types) },
			func() (ort.Value, error) { return ort.NewTensor(ort.NewShape(bb, models.DefaultSteps), run.Decays) },
			func() (ort.Value, error) { return ort.NewTensor(ort.NewShape(bb, DefaultMaxExclude), run.Exclude) },
			func() (ort.Value, error) { return ort.NewEmptyTensor[float32](ort.NewShape(bb, benchDim)) },
			func() (ort.Value, error) { return ort.NewEmptyTensor[float32](ort.NewShape(bb, k)) },
			func() (ort.Value, error) { return ort.NewEmptyTensor[int64](ort.NewShape(bb, k)) },
		} {
			t, err := v()
			if err != nil {
				b.Fatal(err)
			}
			vals = append(vals, t)
		}
		defer destroyAll(vals)
		b.ResetTimer()
		for range b.N {
			if err := sess.Run(vals[:5], vals[5:]); err != nil {
				b.Fatal(err)
			}
		}
		reportRefreshes(b, users)
	})
}

// BenchmarkGoLoop is the plain Go loop on one goroutine that the session
// replaces: the same update, every item scored, a top-20 kept by insertion.
func BenchmarkGoLoop(b *testing.B) {
	for _, items := range benchItemCounts {
		b.Run(fmt.Sprintf("items=%d/B=256", items), func(b *testing.B) { benchGoLoop(b, items) })
	}
}

func benchGoLoop(b *testing.B, items int) {
	spec := scorertest.Spec(items, benchDim, 1)
	tower := scorertest.TowerFromSpec(b, spec)
	const users, k = 256, models.DefaultTopK
	run := scorertest.RandomRun(rand.New(rand.NewPCG(1, 1)), users, benchDim, 1, DefaultMaxExclude, items, 5)
	scores := make([]float32, items+1)
	topS := make([]float32, k)
	topI := make([]int64, k)
	b.ResetTimer()
	for range b.N {
		for u := range users {
			state := run.State[u*benchDim : (u+1)*benchDim]
			tower.Update(state, run.Items[u:u+1], run.Types[u:u+1], run.Decays[u:u+1])
			for i := range scores {
				e := tower.Emb[i*benchDim : (i+1)*benchDim]
				var dot float32
				for j, v := range state {
					dot += v * e[j]
				}
				scores[i] = dot + tower.Prior[i]
			}
			for _, x := range run.Exclude[u*DefaultMaxExclude : (u+1)*DefaultMaxExclude] {
				scores[x] = schemas.ModelMaskedScore
			}
			n := 0
			for i, sc := range scores {
				if n == k && !(sc > topS[k-1]) {
					continue
				}
				p := min(n, k-1) // when full, the last entry drops out
				for p > 0 && topS[p-1] < sc {
					topS[p], topI[p] = topS[p-1], topI[p-1]
					p--
				}
				topS[p], topI[p] = sc, int64(i)
				n = min(n+1, k)
			}
		}
	}
	reportRefreshes(b, users)
}

// BenchmarkScoreSpinning compares ONNX Runtime's intra-op threads spinning
// while they wait for work (ONNX Runtime's default) with sleeping (the
// scorer's setting), 256 users per batch:
//   - load=none: batches back to back;
//   - load=gap: a 2 ms pause after each batch (timer stopped), as when the
//     pipeline waits for its sinks;
//   - load=competitor: a busy goroutine stands in for the sinks and the
//     broker; the work it gets done is competitor_ops/s (SHA-256 of 4 KiB).
//
// cpu_ms/batch is the CPU time of the whole process (every thread) per
// batch, pauses included: what the scorer takes from the rest of the
// machine.
func BenchmarkScoreSpinning(b *testing.B) {
	dir := scorertest.WriteModel(b, scorertest.Spec(benchItems, benchDim, 1))
	for _, load := range []string{"none", "gap", "competitor"} {
		for _, spin := range []bool{true, false} {
			b.Run(fmt.Sprintf("load=%s/spinning=%v", load, spin), func(b *testing.B) {
				s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir, Device: DeviceCPU, allowSpinning: spin}, nil)
				if err != nil {
					b.Fatalf("new scorer (run make setup): %v", err)
				}
				defer s.Close()
				var ops atomic.Int64
				var wg sync.WaitGroup
				stop := make(chan struct{})
				if load == "competitor" {
					wg.Add(1)
					go func() {
						defer wg.Done()
						buf := make([]byte, 4096)
						for {
							select {
							case <-stop:
								return
							default:
							}
							sum := sha256.Sum256(buf)
							buf[0] = sum[0]
							ops.Add(1)
						}
					}()
				}
				var pause func()
				if load == "gap" {
					pause = func() { time.Sleep(2 * time.Millisecond) }
				}
				start, cpu0 := time.Now(), processCPU()
				benchScoreWith(b, s, 256, pause)
				cpu := processCPU() - cpu0
				close(stop)
				wg.Wait()
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu_ms/batch")
				if load == "competitor" {
					b.ReportMetric(float64(ops.Load())/time.Since(start).Seconds(), "competitor_ops/s")
				}
			})
		}
	}
}

// processCPU returns the CPU time the process has used, all threads.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
