package state

import (
	"fmt"
	"math"
	"strings"
)

// NoTimestamp marks a user that has no event applied yet.
const NoTimestamp = math.MinInt64

// NoSlot is the nil link of the recency list.
const NoSlot = -1

// UserState is one user's state as the store keeps it, in a form a
// checkpoint can write and read back (Store.Each, Store.Put).
type UserState struct {
	// UserID is the user's id.
	UserID string
	// State is the model's user vector, D values.
	State []float32
	// NewestTsMs is the newest event time applied (Unix ms): the clock the
	// next event's decay is measured from, and the record's event_ts.
	// math.MinInt64 when no event was applied yet.
	NewestTsMs int64
	// Partition and Offset are the input position of the last event
	// applied; events at or before it in the same partition are recognised
	// as already applied (a replay after a restore) and skipped. Offset is
	// -1 when no event was applied yet.
	Partition int32
	Offset    int64
	// Bought holds the item indices to exclude from the user's
	// recommendations, oldest first, at most Store.MaxExclude.
	Bought []int32
	// History holds a sequence model's user's last item indices, oldest
	// first, at most Store.HistoryLen; nil in a store of states.
	History []int32
}

// userMeta is the per-user bookkeeping kept beside the state vector.
type userMeta struct {
	newestTsMs int64
	offset     int64
	partition  int32
	nBought    uint16 // valid entries in the bought list
	nHist      uint16 // valid entries in the history
}

// Store keeps every known user's state in flat arrays indexed by a
// slot: for a stateful model one arena of D float32 per user, for a
// sequence model one of H item indices (int32) per user; beside it a
// bounded list of bought item indices per user and a little bookkeeping. A
// map from user id to slot is the only per-user allocation. When MaxUsers
// users are stored, taking a new one evicts the user idle longest (the
// least recently refreshed); Evictions counts them. Users idle for longer
// than the scorer's idle_expiry are dropped (Expire); Expiries counts them.
// An evicted or expired user who comes back starts from a cold state.
//
// A Store is not safe for concurrent use; the scorer that owns it
// serialises access.
type Store struct {
	dim        int // float32 state values per user; 0 in a history store
	histLen    int // item indices of history per user; 0 in a state store
	maxExclude int
	maxUsers   int

	index  map[string]int32 // user id -> slot
	ids    []string         // slot -> user id ("" for a free slot)
	states []float32        // slot*dim ... slot*dim+dim
	hist   []int32          // slot*histLen ...: item history, oldest first
	meta   []userMeta
	bought []int32 // slot*maxExclude ...: bought item indices, oldest first
	free   []int32 // slots of expired users, reused before new ones
	// Recency list, most recently touched first: prev/next link slots.
	prev, next []int32
	head, tail int32

	evictions, expiries uint64
}

// NewVectorStore returns an empty store for states of dim values (a
// stateful model's), up to maxExclude bought items per user and maxUsers
// users.
func NewVectorStore(dim, maxExclude, maxUsers int) (*Store, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("new state store: dim must be > 0, got %d", dim)
	}
	return New(dim, 0, maxExclude, maxUsers)
}

// NewHistoryStore returns an empty store for histories of up to histLen
// item indices (a sequence model's), up to maxExclude bought items per user
// and maxUsers users.
func NewHistoryStore(histLen, maxExclude, maxUsers int) (*Store, error) {
	if histLen <= 0 || histLen > math.MaxUint16 {
		return nil, fmt.Errorf("new history store: history length must be in [1, %d], got %d", math.MaxUint16, histLen)
	}
	return New(0, histLen, maxExclude, maxUsers)
}

// New returns an empty store of either layout: states of dim values
// (histLen 0) or histories of histLen item indices (dim 0).
func New(dim, histLen, maxExclude, maxUsers int) (*Store, error) {
	switch {
	case maxExclude < 0 || maxExclude > math.MaxUint16:
		return nil, fmt.Errorf("new state store: max_exclude must be in [0, %d], got %d", math.MaxUint16, maxExclude)
	case maxUsers <= 0 || maxUsers > math.MaxInt32:
		return nil, fmt.Errorf("new state store: max_users must be in [1, %d], got %d", math.MaxInt32, maxUsers)
	}
	return &Store{
		dim:        dim,
		histLen:    histLen,
		maxExclude: maxExclude,
		maxUsers:   maxUsers,
		index:      make(map[string]int32),
		head:       NoSlot,
		tail:       NoSlot,
	}, nil
}

// Dim is the width of a state vector; 0 in a history store.
func (s *Store) Dim() int { return s.dim }

// HistoryLen is the most item indices of history kept per user; 0 in a
// store of states.
func (s *Store) HistoryLen() int { return s.histLen }

// MaxExclude is the most bought items kept per user.
func (s *Store) MaxExclude() int { return s.maxExclude }

// MaxUsers is the most users kept.
func (s *Store) MaxUsers() int { return s.maxUsers }

// Len is the number of users stored.
func (s *Store) Len() int { return len(s.index) }

// Evictions counts the users evicted to make room since the store was made.
func (s *Store) Evictions() uint64 { return s.evictions }

// Expiries counts the users forgotten for being idle since the store was
// made: dropped by Expire, or restarted cold by the scorer when their next
// event came after more than idle_expiry.
func (s *Store) Expiries() uint64 { return s.expiries }

// Lookup returns the user's slot, or NoSlot. id may point into a reused
// buffer: lookup does not keep it.
func (s *Store) Lookup(id string) int32 {
	if slot, ok := s.index[id]; ok {
		return slot
	}
	return NoSlot
}

// Touch moves slot to the front of the recency list.
func (s *Store) Touch(slot int32) {
	if s.head == slot {
		return
	}
	s.unlink(slot)
	s.pushFront(slot)
}

func (s *Store) unlink(slot int32) {
	p, n := s.prev[slot], s.next[slot]
	if p != NoSlot {
		s.next[p] = n
	} else {
		s.head = n
	}
	if n != NoSlot {
		s.prev[n] = p
	} else {
		s.tail = p
	}
	s.prev[slot], s.next[slot] = NoSlot, NoSlot
}

func (s *Store) pushFront(slot int32) {
	s.prev[slot] = NoSlot
	s.next[slot] = s.head
	if s.head != NoSlot {
		s.prev[s.head] = slot
	}
	s.head = slot
	if s.tail == NoSlot {
		s.tail = slot
	}
}

// Insert adds a user with a cold state at the front of the recency list,
// reusing the slot of an expired user if there is one, else evicting the
// least recently touched user when the store is full. The caller must have
// touched every user it still needs, so that the one evicted is not among
// them. id is copied.
func (s *Store) Insert(id string) int32 {
	var slot int32
	switch {
	case len(s.free) > 0:
		slot = s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
	case len(s.ids) < s.maxUsers:
		slot = int32(len(s.ids))
		s.ids = append(s.ids, "")
		s.states = append(s.states, make([]float32, s.dim)...)
		s.hist = append(s.hist, make([]int32, s.histLen)...)
		s.meta = append(s.meta, userMeta{})
		s.bought = append(s.bought, make([]int32, s.maxExclude)...)
		s.prev = append(s.prev, NoSlot)
		s.next = append(s.next, NoSlot)
	default:
		slot = s.tail
		s.unlink(slot)
		delete(s.index, s.ids[slot])
		s.evictions++
	}
	id = strings.Clone(id)
	s.ids[slot] = id
	s.index[id] = slot
	clear(s.Vector(slot))
	s.meta[slot] = userMeta{newestTsMs: NoTimestamp, offset: -1}
	s.pushFront(slot)
	return slot
}

// Expire drops users from the idle end of the recency list whose newest
// event is older than cutoffMs, stopping at the first that is not, or when
// only keep users remain (the users of the batch being scored, which were
// touched to the front). It returns how many it dropped.
//
// The scan is from the least recently refreshed user and stops at the
// first recent one, so it costs nothing when nobody is idle; a user
// refreshed lately by an old event waits until they reach the idle end.
// Which users are dropped therefore depends on batch boundaries, but not
// what they are recommended: the scorer restarts any user whose events
// come more than idle_expiry after their previous one from a cold state,
// dropped or not.
func (s *Store) Expire(cutoffMs int64, keep int) int {
	n := 0
	for s.tail != NoSlot && len(s.index) > keep {
		slot := s.tail
		if s.meta[slot].newestTsMs >= cutoffMs { // NoTimestamp (nothing applied) is older than any cutoff
			break
		}
		s.unlink(slot)
		delete(s.index, s.ids[slot])
		s.ids[slot] = ""
		s.free = append(s.free, slot)
		n++
	}
	s.expiries += uint64(n)
	return n
}

// Vector returns the slot's state vector (aliasing the arena); empty in a
// history store.
func (s *Store) Vector(slot int32) []float32 {
	i := int(slot) * s.dim
	return s.states[i : i+s.dim : i+s.dim]
}

// AppendHistory appends the slot's history, oldest first, to dst.
func (s *Store) AppendHistory(dst []int32, slot int32) []int32 {
	i := int(slot) * s.histLen
	return append(dst, s.hist[i:i+int(s.meta[slot].nHist)]...)
}

// SetHistory replaces the slot's history by the newest histLen of items
// (oldest first).
func (s *Store) SetHistory(slot int32, items []int32) {
	if len(items) > s.histLen {
		items = items[len(items)-s.histLen:]
	}
	copy(s.hist[int(slot)*s.histLen:], items)
	s.meta[slot].nHist = uint16(len(items))
}

// AppendBought appends the slot's bought items, oldest first, to dst.
func (s *Store) AppendBought(dst []int32, slot int32) []int32 {
	i := int(slot) * s.maxExclude
	return append(dst, s.bought[i:i+int(s.meta[slot].nBought)]...)
}

// SetBought replaces the slot's bought items by the newest maxExclude of
// items (oldest first).
func (s *Store) SetBought(slot int32, items []int32) {
	if len(items) > s.maxExclude {
		items = items[len(items)-s.maxExclude:]
	}
	copy(s.bought[int(slot)*s.maxExclude:], items)
	s.meta[slot].nBought = uint16(len(items))
}

// Position returns the slot's clock and input position: the newest event
// time applied and the partition and offset of the last event applied.
func (s *Store) Position(slot int32) (newestTsMs int64, partition int32, offset int64) {
	m := &s.meta[slot]
	return m.newestTsMs, m.partition, m.offset
}

// SetPosition records that the slot's user has had events applied up to
// offset in partition, the newest at newestTsMs.
func (s *Store) SetPosition(slot int32, newestTsMs int64, partition int32, offset int64) {
	m := &s.meta[slot]
	m.newestTsMs, m.partition, m.offset = newestTsMs, partition, offset
}

// CountExpiries adds n users whose state the scorer reset because they came
// back after idle_expiry (Expire counts the users it drops itself).
func (s *Store) CountExpiries(n uint64) { s.expiries += n }

// Get returns a copy of the user's state.
func (s *Store) Get(userID string) (UserState, bool) {
	slot := s.Lookup(userID)
	if slot == NoSlot {
		return UserState{}, false
	}
	return s.Export(slot), true
}

func (s *Store) Export(slot int32) UserState {
	m := s.meta[slot]
	u := UserState{
		UserID:     s.ids[slot],
		NewestTsMs: m.newestTsMs,
		Partition:  m.partition,
		Offset:     m.offset,
		Bought:     s.AppendBought(nil, slot),
	}
	if s.dim > 0 {
		u.State = append([]float32(nil), s.Vector(slot)...)
	}
	if s.histLen > 0 {
		u.History = s.AppendHistory([]int32{}, slot)
	}
	return u
}

// EachSlot calls fn with the slot and id of every stored user, least
// recently refreshed first, until fn returns false; it copies nothing.
// fn must not modify the store.
func (s *Store) EachSlot(fn func(slot int32, id string) bool) {
	for slot := s.tail; slot != NoSlot; slot = s.prev[slot] {
		if !fn(slot, s.ids[slot]) {
			return
		}
	}
}

// Each calls fn with every stored user, least recently refreshed first,
// until fn returns false. The UserState passed is a copy. fn must not
// modify the store.
func (s *Store) Each(fn func(u UserState) bool) {
	for slot := s.tail; slot != NoSlot; slot = s.prev[slot] {
		if !fn(s.Export(slot)) {
			return
		}
	}
}

// Put stores u, replacing the user's state if it is known, as the most
// recently refreshed user; a checkpoint restore calls it in Each's order to
// rebuild the same recency order. It fails if len(u.State) is not Dim, or
// if a store of states is given a History or a history store a State (the
// newest HistoryLen items of a longer History are kept).
func (s *Store) Put(u UserState) error {
	if len(u.State) != s.dim {
		return fmt.Errorf("put state of user %q: %d values, want %d", u.UserID, len(u.State), s.dim)
	}
	if s.histLen == 0 && len(u.History) > 0 {
		return fmt.Errorf("put state of user %q: %d items of history, but the store keeps states, not histories", u.UserID, len(u.History))
	}
	slot := s.Lookup(u.UserID)
	if slot == NoSlot {
		slot = s.Insert(u.UserID)
	} else {
		s.Touch(slot)
	}
	copy(s.Vector(slot), u.State)
	s.meta[slot] = userMeta{newestTsMs: u.NewestTsMs, offset: u.Offset, partition: u.Partition}
	s.SetBought(slot, u.Bought)
	if s.histLen > 0 {
		s.SetHistory(slot, u.History)
	}
	return nil
}

// Gather copies the states of slots into dst, row after row.
func (s *Store) Gather(slots []int32, dst []float32) {
	for i, slot := range slots {
		copy(dst[i*s.dim:(i+1)*s.dim], s.Vector(slot))
	}
}

// Scatter copies the rows of src back into the states of slots.
func (s *Store) Scatter(slots []int32, src []float32) {
	for i, slot := range slots {
		copy(s.Vector(slot), src[i*s.dim:(i+1)*s.dim])
	}
}

// Reshape adapts the store to another model without losing its users, their
// recency order, clocks and input positions: remap (old item index -> new,
// 0 for an item the new model does not know; nil when the item indices are
// unchanged) is applied to every bought list and history, dropping unknown
// items; the bought lists are cut to maxExclude (newest kept). When the
// state layout changes (dim, histLen), or cold is set, every user's state
// or history restarts empty.
func (s *Store) Reshape(dim, histLen, maxExclude int, remap []int32, cold bool) {
	slots := len(s.ids)
	if remap != nil {
		mapList := func(list []int32) int {
			n := 0
			for _, item := range list {
				if item > 0 && int(item) < len(remap) && remap[item] > 0 {
					list[n] = remap[item]
					n++
				}
			}
			return n
		}
		for slot := range slots {
			m := &s.meta[slot]
			m.nBought = uint16(mapList(s.bought[slot*s.maxExclude : slot*s.maxExclude+int(m.nBought)]))
			if s.histLen > 0 {
				m.nHist = uint16(mapList(s.hist[slot*s.histLen : slot*s.histLen+int(m.nHist)]))
			}
		}
	}
	if maxExclude != s.maxExclude {
		bought := make([]int32, slots*maxExclude)
		for slot := range slots {
			m := &s.meta[slot]
			keep := min(int(m.nBought), maxExclude)
			from := slot*s.maxExclude + int(m.nBought) - keep
			copy(bought[slot*maxExclude:], s.bought[from:from+keep])
			m.nBought = uint16(keep)
		}
		s.bought, s.maxExclude = bought, maxExclude
	}
	if dim != s.dim || histLen != s.histLen || cold {
		if dim == s.dim {
			clear(s.states)
		} else {
			s.states = make([]float32, slots*dim)
		}
		if histLen == s.histLen {
			clear(s.hist)
		} else {
			s.hist = make([]int32, slots*histLen)
		}
		for slot := range slots {
			s.meta[slot].nHist = 0
		}
		s.dim, s.histLen = dim, histLen
	}
}
