package retrieval

// Ranker orders a user's candidates, best first. BlendRanker is the one
// without a model; a learned ranker implements it too.
type Ranker interface {
	Rank(cands []Candidate)
}

// Retriever is the two-stage recommender over an Index: candidate sources
// merged per user, then ranked. It keeps scratch space: give each
// goroutine its own.
type Retriever struct {
	Merger *Merger
	Ranker Ranker
	cands  []Candidate
}

// Recommend appends to dst up to k items for the user whose window is w,
// best first, none that exclude rejects, and returns dst.
func (r *Retriever) Recommend(w *Window, k int, exclude func(int32) bool, dst []int32) []int32 {
	r.cands = r.Merger.Merge(w, exclude, r.cands[:0])
	r.Ranker.Rank(r.cands)
	for _, c := range r.cands[:min(k, len(r.cands))] {
		dst = append(dst, c.Item)
	}
	return dst
}

// Candidates returns the candidates of the last Recommend call, ranked.
// They are valid until the next call.
func (r *Retriever) Candidates() []Candidate { return r.cands }
