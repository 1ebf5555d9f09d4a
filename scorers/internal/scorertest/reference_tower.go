package scorertest

import (
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
)

// ReferenceTower is the plain Go version of the built-in graph: the same
// float32 operations in the same order for the update, and a full sort for
// the top K.
type ReferenceTower struct {
	Dim     int
	Emb     []float32 // [N+1, D]
	Weights []float32 // [T+1]
	Prior   []float32 // [N+1]
}

// Update applies one user's L events to state in place.
func (r *ReferenceTower) Update(state []float32, items, types []int64, decays []float32) {
	for l := range items {
		w := r.Weights[types[l]]
		e := r.Emb[int(items[l])*r.Dim : int(items[l]+1)*r.Dim]
		for j := range state {
			x := float32(e[j] * w)
			state[j] = float32(state[j]*decays[l]) + x
		}
	}
}

// TopK scores every item for state, masks exclude and index 0, and returns
// the k best (ties by lower index).
func (r *ReferenceTower) TopK(state []float32, exclude []int64, k int, scores []float32, idx []int64) {
	n := len(r.Prior)
	all := make([]float32, n)
	for i := range n {
		var dot float32
		e := r.Emb[i*r.Dim : (i+1)*r.Dim]
		for j := range state {
			dot += state[j] * e[j]
		}
		all[i] = dot + r.Prior[i]
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

// TowerFromSpec returns the graph parts WriteModelDir would build from spec.
func TowerFromSpec(tb testing.TB, spec models.ModelSpec) *ReferenceTower {
	tb.Helper()
	dim := len(spec.Embeddings[0])
	emb := make([]float32, (len(spec.Items)+1)*dim)
	for i, row := range spec.Embeddings {
		for j, v := range row {
			emb[(i+1)*dim+j] = models.FlushTiny(v)
		}
	}
	w, err := models.TypeWeightVector(schemas.DefaultEventTypes(), models.DefaultTypeWeights())
	if err != nil {
		tb.Fatal(err)
	}
	pw := spec.PriorWeight
	if pw == 0 {
		pw = models.DefaultPriorWeight
	}
	return &ReferenceTower{Dim: dim, Emb: emb, Weights: w, Prior: models.PopularityPrior(spec.Counts, len(spec.Items), pw)}
}
