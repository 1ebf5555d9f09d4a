package retrieval

// PopularSource proposes the most visited items (decayed with the index's
// long half-life): the cold-start fallback for a user with no history.
type PopularSource struct{ Index *Index }

// Name implements Source.
func (s *PopularSource) Name() string { return "popular" }

// Propose implements Source; w is not read.
func (s *PopularSource) Propose(_ *Window, limit int, exclude func(int32) bool, dst []Edge) []Edge {
	return s.Index.popular.appendTop(limit, s.Index.gain, exclude, dst)
}

// TrendingSource proposes the items most visited lately (the index's trend
// half-life): what is rising now, which the long-run popularity lags.
type TrendingSource struct{ Index *Index }

// Name implements Source.
func (s *TrendingSource) Name() string { return "trending" }

// Propose implements Source; w is not read.
func (s *TrendingSource) Propose(_ *Window, limit int, exclude func(int32) bool, dst []Edge) []Edge {
	return s.Index.trendy.appendTop(limit, s.Index.trendGain, exclude, dst)
}
