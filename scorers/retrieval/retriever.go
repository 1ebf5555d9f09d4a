package retrieval

// Ranker orders a user's candidates, best first. BlendRanker is the one
// without a model; a learned ranker implements it too.
type Ranker interface {
	// Rank reorders cands so that the first min(k, len(cands)) are the
	// best, best first; the rest follow in no particular order (ranking
	// a few hundred candidates for a top 20 need not sort them all).
	Rank(cands []Candidate, k int)
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
	r.Ranker.Rank(r.cands, k)
	for _, c := range r.cands[:min(k, len(r.cands))] {
		dst = append(dst, c.Item)
	}
	return dst
}

// Candidates returns the candidates of the last Recommend call, the k
// recommended first. They are valid until the next call.
func (r *Retriever) Candidates() []Candidate { return r.cands }
