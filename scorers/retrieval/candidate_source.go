package retrieval

import (
	"math"
	"slices"
)

// Source proposes candidate items for one user from what the index knows.
// Sources keep scratch space between calls: give each goroutine its own.
type Source interface {
	// Name identifies the source in provenance and reports.
	Name() string
	// Propose appends up to limit candidates for the user whose window is
	// w, best first, each with the source's score, and returns dst.
	Propose(w *Window, limit int, dst []Edge) []Edge
}

// accumulator sums scores per item over a call, and takes the best.
type accumulator struct {
	score   []float64
	touched []int32
}

func (a *accumulator) add(item int32, s float64) {
	if int(item) >= len(a.score) {
		a.score = slices.Grow(a.score, int(item)+1-len(a.score))[:int(item)+1]
	}
	if a.score[item] == 0 {
		a.touched = append(a.touched, item)
	}
	a.score[item] += s
}

// appendBest appends the limit best items, best first (ties by item
// index), and resets the accumulator.
func (a *accumulator) appendBest(limit int, dst []Edge) []Edge {
	start := len(dst)
	for _, it := range a.touched {
		dst = append(dst, Edge{Item: it, Weight: float32(a.score[it])})
		a.score[it] = 0
	}
	a.touched = a.touched[:0]
	slices.SortFunc(dst[start:], heavierFirst)
	return dst[:min(len(dst), start+limit)]
}

// Normalisation says how a co-visit weight c between a voter item a and a
// candidate b is divided by their popularity: c / (count(a)^A *
// count(b)^B). A=B=0 is the raw co-occurrence count (popular candidates
// win), A=1 B=0 the conditional "how often b goes with a", A=B=0.5 the
// cosine similarity; a larger B favours rarer candidates.
type Normalisation struct {
	A, B float64
}

func (n Normalisation) apply(c float32, countA, countB float64) float64 {
	if countA <= 0 || countB <= 0 {
		return 0
	}
	v := float64(c)
	if n.A != 0 {
		v /= math.Pow(countA, n.A)
	}
	if n.B != 0 {
		v /= math.Pow(countB, n.B)
	}
	return v
}
