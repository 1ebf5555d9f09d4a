package scorertest

import (
	"math/rand/v2"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/recstream/recstream/schemas"
)

// GraphRun holds the inputs of one raw session run of the stateful
// contract: B users, state width D, L event steps, M excluded items, top K.
type GraphRun struct {
	B, D, L, M, K int
	State         []float32
	Items, Types  []int64
	Decays        []float32
	Exclude       []int64
}

// RandomRun returns b users' inputs: user i has min(i, l) real events
// (items in [1, n], types in [1, types]), the rest padding, and up to m
// excluded items. K is left for the caller.
func RandomRun(r *rand.Rand, b, d, l, m, n, types int) GraphRun {
	in := GraphRun{B: b, D: d, L: l, M: m,
		State: make([]float32, b*d), Items: make([]int64, b*l), Types: make([]int64, b*l),
		Decays: make([]float32, b*l), Exclude: make([]int64, b*m)}
	for i := range b {
		for j := range d {
			in.State[i*d+j] = float32(r.NormFloat64())
		}
		for s := range l {
			p := i*l + s
			if s < i {
				in.Items[p] = int64(1 + r.IntN(n))
				in.Types[p] = int64(1 + r.IntN(types))
				in.Decays[p] = float32(r.Float64())
			} else {
				in.Decays[p] = 1
			}
		}
		for x := range r.IntN(m + 1) {
			in.Exclude[i*m+x] = int64(1 + r.IntN(n))
		}
	}
	return in
}

// RunGraph runs the session once and returns new_state, top_scores and
// top_items.
func RunGraph(tb testing.TB, s *ort.DynamicAdvancedSession, in GraphRun) ([]float32, []float32, []int64) {
	tb.Helper()
	b := int64(in.B)
	mk := func(v ort.Value, err error) ort.Value {
		if err != nil {
			tb.Fatalf("tensor: %v", err)
		}
		return v
	}
	newS := make([]float32, in.B*in.D)
	scores := make([]float32, in.B*in.K)
	items := make([]int64, in.B*in.K)
	inputs := []ort.Value{
		mk(ort.NewTensor(ort.NewShape(b, int64(in.D)), in.State)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.L)), in.Items)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.L)), in.Types)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.L)), in.Decays)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.M)), in.Exclude)),
	}
	outputs := []ort.Value{
		mk(ort.NewTensor(ort.NewShape(b, int64(in.D)), newS)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.K)), scores)),
		mk(ort.NewTensor(ort.NewShape(b, int64(in.K)), items)),
	}
	defer destroy(inputs)
	defer destroy(outputs)
	if err := s.Run(inputs, outputs); err != nil {
		tb.Fatalf("run: %v", err)
	}
	return newS, scores, items
}

func destroy(vals []ort.Value) {
	for _, v := range vals {
		v.Destroy()
	}
}

// ContractNames returns the stateful contract's input and output names in
// order.
func ContractNames() (in, out []string) {
	for _, t := range schemas.ModelInputs() {
		in = append(in, t.Name)
	}
	for _, t := range schemas.ModelOutputs() {
		out = append(out, t.Name)
	}
	return in, out
}
