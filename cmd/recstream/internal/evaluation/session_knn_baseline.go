package evaluation

import (
	"cmp"
	"context"
	"slices"
)

// SessionKNNConfig configures SessionKNN. The zero value of each field
// means its documented default (those of the published V-SKNN).
type SessionKNNConfig struct {
	// SessionLen is how many of a user's last distinct items make their
	// session. Default 10.
	SessionLen int
	// Sample is how many of the most recent sessions sharing an item with
	// the user's are compared. Default 500.
	Sample int
	// Neighbours is how many of the most similar sessions vote. Default 100.
	Neighbours int
	// Depth is the most items a Recommend call may ask for (the popularity
	// fill keeps that many). Default 11.
	Depth int
}

// WithDefaults returns c with every zero field set to its default.
func (c SessionKNNConfig) WithDefaults() SessionKNNConfig {
	c.SessionLen = cmp.Or(c.SessionLen, 10)
	c.Sample = cmp.Or(c.Sample, 500)
	c.Neighbours = cmp.Or(c.Neighbours, 100)
	c.Depth = cmp.Or(c.Depth, 11)
	return c
}

// SessionKNN is V-SKNN, the vector-multiplication session-based kNN of
// Ludewig and Jannach ("Evaluation of session-based recommendation
// algorithms", UMUAI 2018), learned online: a user's session is their last
// SessionLen distinct items; the Sample most recent other sessions that
// share an item with it are compared, each shared item counting by its
// position in the user's session (the newest 1, linearly less before it);
// the Neighbours most similar sessions vote for their items with their
// similarity. Published comparisons find it matches or beats neural
// session models on e-commerce data, which makes it the neighbourhood
// baseline a learned stage must beat.
type SessionKNN struct {
	cfg SessionKNNConfig
	// sessions holds each user's last distinct items, newest last; touched
	// the event count at the user's last event (recency).
	sessions [][]int32
	touched  []int64
	clock    int64
	// holders lists, per item, the users whose session holds it, most
	// recent last, at most Sample of them.
	holders [][]int32
	pop     *Popularity

	weight  []float64 // scratch: position weight by item of the session
	sim     []float64 // scratch: similarity by user
	seen    []int32   // scratch: users compared
	score   []float64 // scratch: vote by item
	voted   []int32
	nearest []int32
	top     topK
}

// NewSessionKNN returns the baseline over numItems items and numUsers
// users.
func NewSessionKNN(numItems, numUsers int, cfg SessionKNNConfig) *SessionKNN {
	cfg = cfg.WithDefaults()
	return &SessionKNN{
		cfg:      cfg,
		sessions: make([][]int32, numUsers),
		touched:  make([]int64, numUsers),
		holders:  make([][]int32, numItems),
		pop:      NewPopularity(numItems, 2*cfg.Depth),
		weight:   make([]float64, numItems),
		sim:      make([]float64, numUsers),
		score:    make([]float64, numItems),
	}
}

// Name implements Recommender.
func (s *SessionKNN) Name() string { return "session-knn" }

// Recommend implements Recommender.
func (s *SessionKNN) Recommend(user int32, k int, dst []int32) []int32 {
	sess := s.sessions[user]
	n := len(sess)
	for p, it := range sess {
		s.weight[it] = float64(p+1) / float64(n)
	}
	// The sample: the most recent sessions holding one of the user's items.
	s.seen = s.seen[:0]
	for _, it := range sess {
		for _, u := range s.holders[it] {
			if u == user {
				continue
			}
			if s.sim[u] == 0 {
				s.seen = append(s.seen, u)
			}
			s.sim[u] += s.weight[it]
		}
	}
	slices.SortFunc(s.seen, func(a, b int32) int {
		if c := cmp.Compare(s.touched[b], s.touched[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, u := range s.seen[min(len(s.seen), s.cfg.Sample):] {
		s.sim[u] = 0
	}
	sample := s.seen[:min(len(s.seen), s.cfg.Sample)]
	s.nearest = append(s.nearest[:0], sample...)
	slices.SortFunc(s.nearest, func(a, b int32) int {
		if c := cmp.Compare(s.sim[b], s.sim[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(s.touched[b], s.touched[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	s.voted = s.voted[:0]
	for _, u := range s.nearest[:min(len(s.nearest), s.cfg.Neighbours)] {
		for _, it := range s.sessions[u] {
			if s.score[it] == 0 {
				s.voted = append(s.voted, it)
			}
			s.score[it] += s.sim[u]
		}
	}
	for _, u := range sample {
		s.sim[u] = 0
	}
	for _, it := range sess {
		s.weight[it] = 0
	}
	return appendVotedThenPopular(dst, k, &s.top, s.voted, s.score, s.pop, 2*s.cfg.Depth)
}

// Update implements Recommender.
func (s *SessionKNN) Update(ctx context.Context, events []Event) error {
	if err := s.pop.Update(ctx, events); err != nil {
		return err
	}
	for _, e := range events {
		if e.Item == NoItem {
			continue
		}
		s.clock++
		s.touched[e.User] = s.clock
		sess := s.sessions[e.User]
		if i := slices.Index(sess, e.Item); i >= 0 {
			sess = slices.Delete(sess, i, i+1)
		} else {
			s.hold(e.Item, e.User)
		}
		if len(sess) == s.cfg.SessionLen {
			s.release(sess[0], e.User)
			sess = slices.Delete(sess, 0, 1)
		}
		s.sessions[e.User] = append(sess, e.Item)
	}
	return nil
}

// hold records that user's session now holds item, forgetting the
// least recent holder beyond Sample.
func (s *SessionKNN) hold(item, user int32) {
	h := s.holders[item]
	if len(h) == s.cfg.Sample {
		h = slices.Delete(h, 0, 1)
	}
	s.holders[item] = append(h, user)
}

// release records that user's session no longer holds item.
func (s *SessionKNN) release(item, user int32) {
	if i := slices.Index(s.holders[item], user); i >= 0 {
		s.holders[item] = slices.Delete(s.holders[item], i, i+1)
	}
}
