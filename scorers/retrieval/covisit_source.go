package retrieval

// CovisitSource proposes the items co-visited with the user's last items
// ("people who viewed this also viewed"), the item-kNN of session-based
// recommenders: each of the last Recent items of the window votes for its
// neighbours with its normalised co-visit weight, the newest with weight 1
// and each older one Decay times the one after it.
type CovisitSource struct {
	Index *Index
	// Recent is how many of the window's newest items vote. Default 3.
	Recent int
	// Decay is the factor between consecutive voters. Default 0.5.
	Decay float64
	// Norm is the popularity normalisation; the zero value is the raw
	// co-visit weight.
	Norm Normalisation

	acc accumulator
}

// Name implements Source.
func (s *CovisitSource) Name() string { return "covisit" }

// Propose implements Source. Each voter's edges are summed unsorted, and
// the candidate's share of the normalisation, common to every voter, is
// applied once per candidate.
func (s *CovisitSource) Propose(w *Window, limit int, exclude func(int32) bool, dst []Edge) []Edge {
	recent, decay := s.Recent, s.Decay
	if recent <= 0 {
		recent = 3
	}
	if decay <= 0 {
		decay = 0.5
	}
	x := s.Index
	vote := 1.0
	n := len(w.Visits)
	for back := 1; back <= min(recent, n); back++ {
		a := w.Visits[n-back].Item
		if f := vote * divisor(x.Count(a), s.Norm.A) / x.gain; f > 0 {
			for _, e := range x.items[a].covisits {
				s.acc.add(e.Item, f*float64(e.Weight))
			}
		}
		vote *= decay
	}
	s.acc.scale(func(b int32) float64 { return divisor(x.Count(b), s.Norm.B) })
	return s.acc.appendBest(limit, exclude, dst)
}
