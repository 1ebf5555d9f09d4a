package scorers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/recstream/recstream/schemas"
)

// openTestRuntime opens the real ONNX Runtime; a missing library fails the
// test (it is part of the build: make setup fetches it).
func openTestRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	rt, err := OpenRuntime("", nil)
	if err != nil {
		tb.Fatalf("open ONNX Runtime (run make setup): %v", err)
	}
	tb.Cleanup(func() {
		if err := rt.Close(); err != nil {
			tb.Errorf("close runtime: %v", err)
		}
	})
	return rt
}

// testSpec returns a model spec of n items with random unit embeddings of
// dim values and distinct counts (item i has count n-i, so item "i0000" is
// the most popular).
func testSpec(n, dim int, seed uint64) ModelSpec {
	r := rand.New(rand.NewPCG(seed, 7))
	spec := ModelSpec{
		Version: fmt.Sprintf("test-%d-%d-%d", n, dim, seed),
		Items:   make([]string, n),
		Counts:  make([]int64, n),
	}
	for i := range n {
		spec.Items[i] = fmt.Sprintf("i%04d", i)
		spec.Counts[i] = int64(n - i)
		row := make([]float32, dim)
		var ss float64
		for j := range row {
			v := r.NormFloat64()
			row[j] = float32(v)
			ss += v * v
		}
		for j := range row {
			row[j] = float32(float64(row[j]) / math.Sqrt(ss))
		}
		spec.Embeddings = append(spec.Embeddings, row)
	}
	return spec
}

// writeTestModel writes spec into a fresh directory and returns it.
func writeTestModel(tb testing.TB, spec ModelSpec) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "model")
	if err := WriteModelDir(dir, spec); err != nil {
		tb.Fatalf("write model: %v", err)
	}
	return dir
}

// testEvent is one input event of a test batch.
type testEvent struct {
	user, item string
	typ        uint8
	ts         int64
	partition  int32
	offset     int64
}

// makeBatch builds an EventBatch of evs (log time = ts + 5).
func makeBatch(tb testing.TB, evs []testEvent) *schemas.EventBatch {
	tb.Helper()
	b := schemas.NewEventBuilder(nil)
	defer b.Release()
	for _, e := range evs {
		ev := schemas.Event{
			EventID: []byte(fmt.Sprintf("%d-%d", e.partition, e.offset)),
			UserID:  []byte(e.user),
			ItemID:  []byte(e.item),
			Type:    e.typ,
			TsMs:    e.ts,
		}
		b.Append(&ev, e.partition, e.offset, e.ts+5)
	}
	return &schemas.EventBatch{Topic: "events", Events: b.NewRecord(), Records: len(evs)}
}

// graphRun holds the inputs of one raw session run.
type graphRun struct {
	b, d, l, m, k int
	state         []float32
	items, types  []int64
	decays        []float32
	exclude       []int64
}

// runGraph runs the session once and returns new_state, top_scores and
// top_items.
func runGraph(tb testing.TB, s *ort.DynamicAdvancedSession, in graphRun) ([]float32, []float32, []int64) {
	tb.Helper()
	b := int64(in.b)
	mk := func(v ort.Value, err error) ort.Value {
		if err != nil {
			tb.Fatalf("tensor: %v", err)
		}
		return v
	}
	newS := make([]float32, in.b*in.d)
	scores := make([]float32, in.b*in.k)
	items := make([]int64, in.b*in.k)
	inputs := []ort.Value{
		mk(ort.NewTensor(ort.NewShape(b, int64(in.d)), in.state)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.l)), in.items)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.l)), in.types)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.l)), in.decays)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.m)), in.exclude)),
	}
	outputs := []ort.Value{
		mk(ort.NewTensor(ort.NewShape(b, int64(in.d)), newS)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.k)), scores)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.k)), items)),
	}
	defer destroyAll(inputs)
	defer destroyAll(outputs)
	if err := s.Run(inputs, outputs); err != nil {
		tb.Fatalf("run: %v", err)
	}
	return newS, scores, items
}

// contractNames returns the contract's input and output names in order.
func contractNames() (in, out []string) {
	for _, t := range schemas.ModelInputs() {
		in = append(in, t.Name)
	}
	for _, t := range schemas.ModelOutputs() {
		out = append(out, t.Name)
	}
	return in, out
}

// referenceTower is the plain Go version of the built-in graph: the same
// float32 operations in the same order for the update, and a full sort for
// the top K.
type referenceTower struct {
	dim     int
	emb     []float32 // [N+1, D]
	weights []float32 // [T+1]
	prior   []float32 // [N+1]
}

// update applies one user's L events to state in place.
func (r *referenceTower) update(state []float32, items, types []int64, decays []float32) {
	for l := range items {
		w := r.weights[types[l]]
		e := r.emb[int(items[l])*r.dim : int(items[l]+1)*r.dim]
		for j := range state {
			x := float32(e[j] * w)
			state[j] = float32(state[j]*decays[l]) + x
		}
	}
}

// topK scores every item for state, masks exclude and index 0, and returns
// the k best (ties by lower index).
func (r *referenceTower) topK(state []float32, exclude []int64, k int, scores []float32, idx []int64) {
	n := len(r.prior)
	all := make([]float32, n)
	for i := range n {
		var dot float32
		e := r.emb[i*r.dim : (i+1)*r.dim]
		for j := range state {
			dot += state[j] * e[j]
		}
		all[i] = dot + r.prior[i]
	}
	for _, x := range exclude {
		all[x] = schemas.ModelMaskedScore
	}
	all[0] = min(all[0], schemas.ModelMaskedScore)
	order := make([]int64, n)
	for i := range order {
		order[i] = int64(i)
	}
	// Partial selection sort is enough for small k.
	for j := range k {
		best := j
		for i := j + 1; i < n; i++ {
			if all[order[i]] > all[order[best]] || (all[order[i]] == all[order[best]] && order[i] < order[best]) {
				best = i
			}
		}
		order[j], order[best] = order[best], order[j]
		idx[j] = order[j]
		scores[j] = all[order[j]]
	}
}

// towerFromSpec returns the graph parts WriteModelDir would build from spec.
func towerFromSpec(tb testing.TB, spec ModelSpec) *referenceTower {
	tb.Helper()
	dim := len(spec.Embeddings[0])
	emb := make([]float32, (len(spec.Items)+1)*dim)
	for i, row := range spec.Embeddings {
		for j, v := range row {
			emb[(i+1)*dim+j] = flushTiny(v)
		}
	}
	w, err := typeWeightVector(schemas.DefaultEventTypes(), DefaultTypeWeights())
	if err != nil {
		tb.Fatal(err)
	}
	pw := spec.PriorWeight
	if pw == 0 {
		pw = DefaultPriorWeight
	}
	return &referenceTower{dim: dim, emb: emb, weights: w, prior: popularityPrior(spec.Counts, len(spec.Items), pw)}
}
