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
	// w, best first, each with the source's score, none that exclude
	// rejects (exclude may be nil), and returns dst. Excluding inside the
	// source, rather than after, keeps the list full without asking twice.
	Propose(w *Window, limit int, exclude func(item int32) bool, dst []Edge) []Edge
}

// accumulator sums scores per item over a call, and takes the best.
type accumulator struct {
	score   []float64
	touched []int32
	heap    []Edge
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

// scale multiplies each touched item's score by f(item).
func (a *accumulator) scale(f func(item int32) float64) {
	for _, it := range a.touched {
		a.score[it] *= f(it)
	}
}

// appendBest appends the limit best items that exclude does not reject,
// best first (ties by item index), and resets the accumulator. The best
// are kept in a bounded heap whose root is the worst of them, so most of
// the touched items cost one comparison.
func (a *accumulator) appendBest(limit int, exclude func(int32) bool, dst []Edge) []Edge {
	h := a.heap[:0]
	for _, it := range a.touched {
		e := Edge{Item: it, Weight: float32(a.score[it])}
		a.score[it] = 0
		if exclude != nil && exclude(it) {
			continue
		}
		switch {
		case len(h) < limit:
			h = append(h, e)
			siftUp(h, len(h)-1)
		case heavierFirst(e, h[0]) < 0:
			h[0] = e
			siftDown(h, 0)
		}
	}
	a.touched = a.touched[:0]
	slices.SortFunc(h, heavierFirst)
	a.heap = h
	return append(dst, h...)
}

// siftUp and siftDown keep h a heap with the worst edge (by heavierFirst)
// at the root.
func siftUp(h []Edge, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if heavierFirst(h[i], h[p]) <= 0 {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []Edge, i int) {
	for {
		worst, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && heavierFirst(h[l], h[worst]) > 0 {
			worst = l
		}
		if r < len(h) && heavierFirst(h[r], h[worst]) > 0 {
			worst = r
		}
		if worst == i {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}

// Normalisation says how a co-visit weight c between a voter item a and a
// candidate b is divided by their popularity: c / (count(a)^A *
// count(b)^B). A=B=0 is the raw co-occurrence count (popular candidates
// win), A=1 B=0 the conditional "how often b goes with a", A=B=0.5 the
// cosine similarity; a larger B favours rarer candidates.
type Normalisation struct {
	A, B float64
}

// divisor returns 1/count^e (0 for a count <= 0), with the exponents the
// tuning tries computed by square roots: math.Pow was a fifth of the
// retrieval's time.
func divisor(count, e float64) float64 {
	if count <= 0 {
		return 0
	}
	switch e {
	case 0:
		return 1
	case 1:
		return 1 / count
	case 0.5:
		return 1 / math.Sqrt(count)
	case -0.5:
		return math.Sqrt(count)
	case 0.25:
		return 1 / math.Sqrt(math.Sqrt(count))
	case -0.25:
		return math.Sqrt(math.Sqrt(count))
	}
	return math.Pow(count, -e)
}
