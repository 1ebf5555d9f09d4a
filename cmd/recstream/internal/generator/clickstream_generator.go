// Package generator produces a synthetic clickstream with the structure of a
// real shop: items of categories with Zipf popularity, user sessions that
// walk a view → click → add_to_cart → purchase funnel, searches, users whose
// interests drift, and a small share of malformed events of every kind the
// decoder rejects. The same seed gives the same stream.
package generator

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Config shapes the synthetic stream. Zero fields take the defaults noted.
type Config struct {
	// Seed fixes the stream: the same seed gives the same events.
	Seed uint64 `yaml:"seed"`
	// Users is the number of distinct users (default 5000).
	Users int `yaml:"users"`
	// Items is the number of distinct items (default 10000).
	Items int `yaml:"items"`
	// Categories is the number of item categories (default 20).
	Categories int `yaml:"categories"`
	// MalformedRate is the share of events that are deliberately bad
	// (default 0.005; negative means none).
	MalformedRate float64 `yaml:"malformed_rate"`
	// Start is the event time of the first event (default 2026-01-01 UTC).
	Start time.Time `yaml:"start"`
	// Spacing is the event-time gap between consecutive events (default 20ms).
	Spacing time.Duration `yaml:"spacing"`
	// DriftRate is the chance that a session moves the user's interest to a
	// new category (default 0.05).
	DriftRate float64 `yaml:"drift_rate"`
}

func (c Config) withDefaults() Config {
	if c.Users <= 0 {
		c.Users = 5000
	}
	if c.Items <= 0 {
		c.Items = 10000
	}
	if c.Categories <= 0 {
		c.Categories = 20
	}
	if c.Categories > c.Items {
		c.Categories = c.Items
	}
	c.MalformedRate = cmp.Or(c.MalformedRate, 0.005)
	if c.MalformedRate < 0 {
		c.MalformedRate = 0
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Spacing <= 0 {
		c.Spacing = 20 * time.Millisecond
	}
	c.DriftRate = cmp.Or(c.DriftRate, 0.05)
	return c
}

// Malformed kinds the generator writes; each names the dead-letter reason
// the decoder must give it.
const (
	KindValid         = ""
	KindMalformedJSON = "malformed_json"
	KindMissingField  = "missing_field"
	KindUnknownType   = "unknown_type"
	KindOversize      = "oversize"
	KindBadTimestamp  = "bad_timestamp"
)

var malformedKinds = [...]string{KindMalformedJSON, KindMissingField, KindUnknownType, KindOversize, KindBadTimestamp}

// Record is one generated Kafka message.
type Record struct {
	Key   []byte
	Value []byte
	// Kind is KindValid for a good event, else the reason it must be rejected.
	Kind string
	// UserID is the event's user (also for most malformed records).
	UserID string
	// Time is the event time.
	Time time.Time
}

type user struct {
	id        string
	interests [3]int // categories, most liked first
	session   session
}

type session struct {
	id       string
	left     int // events left in the session
	category int
	item     int // item being looked at, -1 before the first view
	stage    int // 0 view, 1 clicked, 2 in cart
}

// Generator yields the stream one record at a time. It is not safe for
// concurrent use.
type Generator struct {
	cfg        Config
	rng        *rand.Rand
	users      []user
	byCategory [][]int // item indices of each category, most popular first
	zipf       []*rand.Zipf
	seq        uint64
	now        time.Time
}

// New returns a generator for cfg.
func New(cfg Config) *Generator {
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &Generator{cfg: cfg, rng: rng, now: cfg.Start}
	g.byCategory = make([][]int, cfg.Categories)
	for i := 0; i < cfg.Items; i++ {
		c := i % cfg.Categories
		g.byCategory[c] = append(g.byCategory[c], i)
	}
	g.zipf = make([]*rand.Zipf, cfg.Categories)
	for c := range g.byCategory {
		g.zipf[c] = rand.NewZipf(rng, 1.2, 4, uint64(len(g.byCategory[c])-1))
	}
	g.users = make([]user, cfg.Users)
	for i := range g.users {
		u := &g.users[i]
		u.id = UserID(i)
		for j := range u.interests {
			u.interests[j] = rng.IntN(cfg.Categories)
		}
	}
	return g
}

// UserID is the id of the i-th synthetic user.
func UserID(i int) string { return fmt.Sprintf("u%06d", i) }

// ItemID is the id of the i-th synthetic item; it names its category so
// that a person reading recommendations can judge them.
func ItemID(i, categories int) string { return fmt.Sprintf("c%02d-i%05d", i%categories, i) }

// CategoryName is the name of category c, used in events and searches.
func CategoryName(c int) string { return fmt.Sprintf("cat%02d", c) }

// Interests returns the categories the i-th user likes most, best first, as
// they stand now (interests drift as the stream advances).
func (g *Generator) Interests(i int) []int {
	in := g.users[i].interests
	return in[:]
}

// Config returns the configuration in force, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Next returns the next record of the stream.
func (g *Generator) Next() Record {
	g.seq++
	g.now = g.now.Add(g.cfg.Spacing)
	// Users are drawn with a mild skew: some users are far more active.
	ui := int(math.Floor(math.Pow(g.rng.Float64(), 1.5) * float64(len(g.users))))
	u := &g.users[ui]
	typ, item, query := g.step(u)
	rec := Record{Key: []byte(u.id), UserID: u.id, Time: g.now}
	eventID := "e" + strconv.FormatUint(g.cfg.Seed, 36) + "-" + strconv.FormatUint(g.seq, 36)

	kind := KindValid
	if g.cfg.MalformedRate > 0 && g.rng.Float64() < g.cfg.MalformedRate {
		kind = malformedKinds[g.rng.IntN(len(malformedKinds))]
	}
	rec.Kind = kind
	b := make([]byte, 0, 192)
	switch kind {
	case KindMalformedJSON:
		b = append(b, `{"event_id":"`...)
		b = append(b, eventID...)
		b = append(b, `","user_id":"`...)
		b = append(b, u.id...)
		b = append(b, `","item_id":`...) // cut short: not JSON
		rec.Value = b
		return rec
	case KindMissingField:
		b = append(b, `{"event_id":"`...)
		b = append(b, eventID...)
		b = append(b, `","item_id":"x","type":"view","ts":`...)
		b = strconv.AppendInt(b, g.now.UnixMilli(), 10)
		b = append(b, '}')
		rec.Value = b
		return rec
	}
	b = append(b, `{"event_id":"`...)
	b = append(b, eventID...)
	b = append(b, `","user_id":"`...)
	b = append(b, u.id...)
	b = append(b, `","type":"`...)
	if kind == KindUnknownType {
		b = append(b, "teleport"...)
	} else {
		b = append(b, typ...)
	}
	b = append(b, '"')
	if item >= 0 {
		b = append(b, `,"item_id":"`...)
		b = append(b, ItemID(item, g.cfg.Categories)...)
		b = append(b, `","category":"`...)
		b = append(b, CategoryName(item%g.cfg.Categories)...)
		b = append(b, `","price":`...)
		b = strconv.AppendFloat(b, float64(5+item%200)+0.99, 'f', 2, 64)
	}
	if query != "" {
		b = append(b, `,"query":"`...)
		b = append(b, query...)
		b = append(b, '"')
	}
	b = append(b, `,"session_id":"`...)
	b = append(b, u.session.id...)
	b = append(b, `","ts":`...)
	switch {
	case kind == KindBadTimestamp:
		b = append(b, `"yesterday at noon"`...)
	case g.seq%2 == 0:
		b = append(b, '"')
		b = g.now.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
	default:
		b = strconv.AppendInt(b, g.now.UnixMilli(), 10)
	}
	if kind == KindOversize {
		b = append(b, `,"padding":"`...)
		for i := 0; i < 20000; i++ {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	b = append(b, '}')
	rec.Value = b
	return rec
}

// step advances u's session by one event and returns its type, item index
// (-1 for none) and search query.
func (g *Generator) step(u *user) (typ string, item int, query string) {
	s := &u.session
	if s.left <= 0 {
		if g.rng.Float64() < g.cfg.DriftRate {
			// Interest drift: the least liked category is replaced and the
			// new one becomes the favourite.
			u.interests[2] = u.interests[1]
			u.interests[1] = u.interests[0]
			u.interests[0] = g.rng.IntN(g.cfg.Categories)
		}
		r := g.rng.Float64()
		c := u.interests[0]
		if r > 0.6 {
			c = u.interests[1]
		}
		if r > 0.85 {
			c = u.interests[2]
		}
		if r > 0.95 {
			c = g.rng.IntN(g.cfg.Categories)
		}
		g.seq++
		*s = session{id: u.id + "-s" + strconv.FormatUint(g.seq, 36), left: 3 + g.rng.IntN(12), category: c, item: -1}
		if g.rng.Float64() < 0.3 {
			s.left--
			return "search", -1, CategoryName(c)
		}
	}
	s.left--
	r := g.rng.Float64()
	switch {
	case s.item >= 0 && s.stage == 0 && r < 0.35:
		s.stage = 1
		return "click", s.item, ""
	case s.item >= 0 && s.stage == 1 && r < 0.3:
		s.stage = 2
		return "add_to_cart", s.item, ""
	case s.item >= 0 && s.stage == 2 && r < 0.5:
		s.stage = 0
		bought := s.item
		s.item = -1
		return "purchase", bought, ""
	}
	items := g.byCategory[s.category]
	s.item = items[int(g.zipf[s.category].Uint64())]
	s.stage = 0
	return "view", s.item, ""
}
