package scorertest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/recstream/recstream/scorers/models"
)

// Spec returns a model spec of n items with random unit embeddings of dim
// values and distinct counts (item i has count n-i, so item "i0000" is the
// most popular).
func Spec(n, dim int, seed uint64) models.ModelSpec {
	r := rand.New(rand.NewPCG(seed, 7))
	spec := models.ModelSpec{
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

// WriteModel writes spec into a fresh directory and returns it.
func WriteModel(tb testing.TB, spec models.ModelSpec) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "model")
	if err := models.WriteModelDir(dir, spec); err != nil {
		tb.Fatalf("write model: %v", err)
	}
	return dir
}

// SequenceSpec returns a sequence model spec over the items and embeddings
// of Spec(n, dim, seed).
func SequenceSpec(n, dim int, seed uint64, history int, noExclude bool) models.SequenceModelSpec {
	ts := Spec(n, dim, seed)
	return models.SequenceModelSpec{
		Version:    fmt.Sprintf("seq-%d-%d-%d-h%d", n, dim, seed, history),
		Items:      ts.Items,
		Embeddings: ts.Embeddings,
		Counts:     ts.Counts,
		History:    history,
		NoExclude:  noExclude,
	}
}

// WriteSequenceModel writes spec into a fresh directory and returns it.
func WriteSequenceModel(tb testing.TB, spec models.SequenceModelSpec) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "seq")
	if err := models.WriteSequenceModelDir(dir, spec); err != nil {
		tb.Fatalf("write sequence model: %v", err)
	}
	return dir
}
