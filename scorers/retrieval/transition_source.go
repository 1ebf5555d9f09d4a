package retrieval

// TransitionSource proposes the items other users visited right after the
// user's newest item (item A, then item B), normalised as CovisitSource's
// votes are.
type TransitionSource struct {
	Index *Index
	// Norm is the popularity normalisation; the zero value is the raw
	// transition weight.
	Norm Normalisation

	acc     accumulator
	scratch []Edge
}

// Name implements Source.
func (s *TransitionSource) Name() string { return "transition" }

// Propose implements Source.
func (s *TransitionSource) Propose(w *Window, limit int, dst []Edge) []Edge {
	last, ok := w.Last()
	if !ok {
		return dst
	}
	countA := s.Index.Count(last.Item)
	s.scratch = s.Index.Successors(last.Item, s.scratch[:0])
	for _, e := range s.scratch {
		s.acc.add(e.Item, s.Norm.apply(e.Weight, countA, s.Index.Count(e.Item)))
	}
	return s.acc.appendBest(limit, dst)
}
