package retrieval

// TransitionSource proposes the items other users visited right after the
// user's newest item (item A, then item B), normalised as CovisitSource's
// votes are.
type TransitionSource struct {
	Index *Index
	// Norm is the popularity normalisation; the zero value is the raw
	// transition weight.
	Norm Normalisation

	acc accumulator
}

// Name implements Source.
func (s *TransitionSource) Name() string { return "transition" }

// Propose implements Source.
func (s *TransitionSource) Propose(w *Window, limit int, exclude func(int32) bool, dst []Edge) []Edge {
	last, ok := w.Last()
	if !ok {
		return dst
	}
	x := s.Index
	if f := divisor(x.Count(last.Item), s.Norm.A) / x.gain; f > 0 {
		for _, e := range x.items[last.Item].successors {
			s.acc.add(e.Item, f*float64(e.Weight))
		}
	}
	s.acc.scale(func(b int32) float64 { return divisor(x.Count(b), s.Norm.B) })
	return s.acc.appendBest(limit, exclude, dst)
}
