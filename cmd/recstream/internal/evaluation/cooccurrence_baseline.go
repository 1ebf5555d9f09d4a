package evaluation

import (
	"context"
	"slices"
)

// CooccurrenceConfig configures Cooccurrence. The zero value of each field
// means its documented default.
type CooccurrenceConfig struct {
	// Window is how many of a user's previous distinct items each new item
	// is counted with. Default 5.
	Window int
	// Recent is how many of the user's last items vote for candidates; the
	// last counts 1, the one before 1/2, then 1/4... At most Window of them
	// are kept. Default 3.
	Recent int
	// Depth is the most items a Recommend call may ask for (the popularity
	// fill keeps that many). Default 11.
	Depth int
}

// WithDefaults returns c with every zero field set to its default.
func (c CooccurrenceConfig) WithDefaults() CooccurrenceConfig {
	if c.Window <= 0 {
		c.Window = 5
	}
	if c.Recent <= 0 {
		c.Recent = 3
	}
	if c.Depth <= 0 {
		c.Depth = 11
	}
	return c
}

// Cooccurrence is item-to-item collaborative filtering, learned online:
// two items are related by how often users had both within Window of their
// consecutive distinct items, and a user is recommended the items most
// related to their last Recent items ("people who viewed this also
// viewed"), then the most popular items to fill the list. It is the
// strongest of the baselines on session-shaped data: it knows what the user
// is looking at right now.
type Cooccurrence struct {
	cfg     CooccurrenceConfig
	related []map[int32]float64 // item -> related item -> count
	history [][]int32           // user -> last Window distinct items, newest last
	pop     *Popularity
	score   []float64 // scratch: candidate scores by item
	touched []int32
	top     topK
}

// NewCooccurrence returns an item co-occurrence baseline over numItems
// items and numUsers users.
func NewCooccurrence(numItems, numUsers int, cfg CooccurrenceConfig) *Cooccurrence {
	cfg = cfg.WithDefaults()
	return &Cooccurrence{
		cfg:     cfg,
		related: make([]map[int32]float64, numItems),
		history: make([][]int32, numUsers),
		// The fill skips items already chosen: twice the depth is enough.
		pop:   NewPopularity(numItems, 2*cfg.Depth),
		score: make([]float64, numItems),
	}
}

// Name implements Recommender.
func (c *Cooccurrence) Name() string { return "cooccurrence" }

// Recommend implements Recommender. Votes are powers of two times integer
// counts, so their sums are exact and the ranking does not depend on the
// order in which related items are visited.
func (c *Cooccurrence) Recommend(user int32, k int, dst []int32) []int32 {
	h := c.history[user]
	c.touched = c.touched[:0]
	w := 1.0
	for t := len(h) - 1; t >= 0 && t >= len(h)-c.cfg.Recent; t-- {
		for it, n := range c.related[h[t]] {
			if c.score[it] == 0 {
				c.touched = append(c.touched, it)
			}
			c.score[it] += w * n
		}
		w /= 2
	}
	return appendVotedThenPopular(dst, k, &c.top, c.touched, c.score, c.pop, 2*c.cfg.Depth)
}

// Update implements Recommender.
func (c *Cooccurrence) Update(ctx context.Context, events []Event) error {
	if err := c.pop.Update(ctx, events); err != nil {
		return err
	}
	for _, e := range events {
		if e.Item == NoItem {
			continue
		}
		h := c.history[e.User]
		if n := len(h); n > 0 && h[n-1] == e.Item {
			continue
		}
		for _, prev := range h {
			if prev == e.Item {
				continue
			}
			c.link(prev, e.Item)
			c.link(e.Item, prev)
		}
		if i := slices.Index(h, e.Item); i >= 0 {
			h = slices.Delete(h, i, i+1)
		}
		if len(h) == c.cfg.Window {
			h = slices.Delete(h, 0, 1)
		}
		c.history[e.User] = append(h, e.Item)
	}
	return nil
}

func (c *Cooccurrence) link(a, b int32) {
	m := c.related[a]
	if m == nil {
		m = map[int32]float64{}
		c.related[a] = m
	}
	m[b]++
}
