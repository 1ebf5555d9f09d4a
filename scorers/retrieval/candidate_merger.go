package retrieval

import (
	"fmt"
	"slices"
)

// MaxSources bounds the sources one Merger combines.
const MaxSources = 8

// Candidate is an item proposed for a user, with where it came from: the
// features a ranker reads.
type Candidate struct {
	Item int32
	// Score and Rank are each source's score and 1-based rank of the item,
	// by the Merger's source order; 0 where the source did not propose it.
	Score [MaxSources]float32
	Rank  [MaxSources]uint16
	// Final is the ranker's score, set by Rank: higher is better.
	Final float32
}

// From reports whether source s proposed the candidate.
func (c *Candidate) From(s int) bool { return c.Rank[s] > 0 }

// SourceLimit is a source and the most candidates it may contribute.
type SourceLimit struct {
	Source Source
	Limit  int
}

// Merger asks each source for its candidates and merges them per user:
// each item once, with every source's score and rank, and items the user
// must not be shown removed before ranking. It keeps scratch space: give
// each goroutine its own.
type Merger struct {
	sources []SourceLimit
	pos     []int32 // item -> index+1 in the candidates of the call, 0: none
	scratch []Edge
}

// NewMerger returns a merger of sources, in this order (a candidate's
// Score and Rank index them).
func NewMerger(sources ...SourceLimit) (*Merger, error) {
	if len(sources) == 0 || len(sources) > MaxSources {
		return nil, fmt.Errorf("candidate sources: want 1 to %d, got %d", MaxSources, len(sources))
	}
	for i, s := range sources {
		if s.Source == nil || s.Limit <= 0 || s.Limit > 1<<15 {
			return nil, fmt.Errorf("candidate sources[%d]: want a source and a limit in [1, 32768], got %v limit %d", i, s.Source, s.Limit)
		}
	}
	return &Merger{sources: sources}, nil
}

// Merge appends to dst the candidates for the user whose window is w: up
// to each source's limit of items that exclude does not reject (exclude
// may be nil; the sources skip them, so a list is not left short while a
// source has more to give), in order of first proposal, and returns dst.
func (m *Merger) Merge(w *Window, exclude func(item int32) bool, dst []Candidate) []Candidate {
	start := len(dst)
	for si, src := range m.sources {
		m.scratch = src.Source.Propose(w, src.Limit, exclude, m.scratch[:0])
		rank := 0
		for _, e := range m.scratch {
			if rank == src.Limit {
				break
			}
			rank++
			if int(e.Item) >= len(m.pos) {
				m.pos = slices.Grow(m.pos, int(e.Item)+1-len(m.pos))[:int(e.Item)+1]
			}
			p := m.pos[e.Item]
			if p == 0 {
				dst = append(dst, Candidate{Item: e.Item})
				p = int32(len(dst) - start)
				m.pos[e.Item] = p
			}
			c := &dst[start+int(p)-1]
			c.Score[si], c.Rank[si] = e.Weight, uint16(rank)
		}
	}
	for _, c := range dst[start:] {
		m.pos[c.Item] = 0
	}
	return dst
}
