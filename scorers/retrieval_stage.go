package scorers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/retrieval"
	"github.com/recstream/recstream/scorers/state"
)

// retrievalStage is the scorer's recommender when scorer.recommender is
// "retrieval" (see Config.Recommender): the streaming two-stage
// recommender of scorers/retrieval, learned from the batches themselves.
//
// There is one item index per input partition, with its own item
// vocabulary, and a user's window and exclude list live in the index of
// the partition their events come from. That is what keeps records
// deterministic under replays and restarts: a user's events all come from
// one partition (the input is keyed by user), so what their record depends
// on (their partition's events up to their own, in offset order) is the
// same however the partitions interleave and wherever batches are cut.
// One index over every partition would learn from more users, but its
// state at a given event would depend on how the consumer interleaved
// partitions, and a rewrite after kill -9 could differ from the first
// write. Each record is therefore computed at the user's last event of the
// batch, before the partition's later events are learned.
type retrievalStage struct {
	cfg         retrieval.Config
	version     string
	weights     []float32 // type code -> weight (0: not learned)
	excludeType []bool    // type code -> its item is excluded for the user
	maxExclude  int
	parts       map[int32]*partitionIndex
	users       []userRecent      // by store slot
	recs        []recentRecs      // per batch user: the record's items
	order       []*partitionIndex // the batch's partitions, first-seen order
	userPart    []int32           // per batch user: their partition in the batch
	mixed       []int32           // applied rows in input order, when a user spans partitions
	// items and dropped are stats(), kept for readers on other goroutines.
	items, dropped atomic.Int64
}

// partitionIndex is one partition's item vocabulary and index.
type partitionIndex struct {
	index     *retrieval.Index
	vocab     map[string]int32
	ids       []string
	retriever *retrieval.Retriever
	// Per batch: the partition's applied rows, in input order, and the
	// items chosen for its users.
	rows      []int32
	recItems  []int32
	recScores []float32
}

// userRecent is a user's retrieval state: their window (newest distinct
// items, in their partition's vocabulary) and the items never to show
// them again.
type userRecent struct {
	partition int32 // of the vocabulary; noPartition when empty
	window    retrieval.Window
	excluded  []int32 // newest maxExclude, oldest first
}

const noPartition = -1

// recentRecs is where a batch user's items are: in their partition's
// recItems.
type recentRecs struct {
	pi       *partitionIndex
	start, n int32
}

func newRetrievalStage(cfg Config) (*retrievalStage, error) {
	rc := cfg.Retrieval.WithDefaults()
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("retrieval.%w", err)
	}
	weights, err := models.TypeWeightVector(cfg.EventTypes, cfg.TypeWeights)
	if err != nil {
		return nil, err
	}
	st := &retrievalStage{cfg: rc, weights: weights[1:], excludeType: make([]bool, len(cfg.EventTypes)),
		maxExclude: cfg.MaxExclude, parts: map[int32]*partitionIndex{}}
	for code, name := range cfg.EventTypes {
		st.excludeType[code] = slices.Contains(cfg.ExcludeTypes, name)
	}
	// The version names what scored a record: the configuration and type
	// weights, so that a change of either shows in the records.
	h := sha256.New()
	fmt.Fprintf(h, "%+v|%v|%v|%v", rc, cfg.EventTypes, st.weights, cfg.ExcludeTypes)
	st.version = "retrieval-" + hex.EncodeToString(h.Sum(nil)[:4])
	return st, nil
}

func (st *retrievalStage) partition(p int32) (*partitionIndex, error) {
	if pi := st.parts[p]; pi != nil {
		return pi, nil
	}
	idx, err := retrieval.NewIndex(st.cfg.Index)
	if err != nil {
		return nil, err
	}
	pi := &partitionIndex{index: idx, vocab: map[string]int32{}}
	if pi.retriever, err = retrieval.NewRetriever(idx, st.cfg, ""); err != nil {
		return nil, err
	}
	st.parts[p] = pi
	return pi, nil
}

// intern returns the item's index in the partition's vocabulary, adding
// it; -1 once the vocabulary holds index.max_items items.
func (pi *partitionIndex) intern(id string, maxItems int) int32 {
	if i, ok := pi.vocab[id]; ok {
		return i
	}
	if len(pi.ids) >= maxItems {
		return -1
	}
	i := int32(len(pi.ids))
	id = string([]byte(id)) // the batch's memory is released after Score
	pi.vocab[id] = i
	pi.ids = append(pi.ids, id)
	return i
}

func (st *retrievalStage) user(slot int32) *userRecent {
	for len(st.users) <= int(slot) {
		st.users = append(st.users, userRecent{partition: noPartition})
	}
	return &st.users[slot]
}

func (u *userRecent) reset() {
	u.partition = noPartition
	u.window.Visits = u.window.Visits[:0]
	u.excluded = u.excluded[:0]
}

// run learns the batch's applied events in input order, each in its
// partition's index, and computes each active user's items at their last
// applied event. Partitions share nothing, so they run in parallel, one
// goroutine per partition up to GOMAXPROCS; a batch in which a user has
// events from two partitions (the input was re-keyed) runs on one
// goroutine, as that user's state is then shared. Nothing can fail half
// way: an error (a bad retrieval configuration) comes before anything is
// learned.
func (st *retrievalStage) run(s *Scorer, rows schemas.EventRows, topK int) error {
	b := &s.b
	st.recs = slices.Grow(st.recs[:0], len(b.users))[:len(b.users)]
	for _, u := range b.active {
		if bu := &b.users[u]; bu.fresh {
			st.user(bu.slot).reset() // the slot held another user before
		}
	}
	// Group the applied rows by partition, keeping their order, and make
	// every state the workers touch exist first: they only read the maps.
	for _, pi := range st.parts {
		pi.rows, pi.recItems, pi.recScores = pi.rows[:0], pi.recItems[:0], pi.recScores[:0]
	}
	st.order = st.order[:0]
	userPart := st.userPart[:0]
	for range b.users {
		userPart = append(userPart, noPartition)
	}
	st.userPart = userPart
	shared := false
	for row, flag := range b.rowFlag {
		if flag&rowApplied == 0 {
			continue
		}
		u := b.rowUser[row]
		part := rows.Partition.Value(row)
		pi, err := st.partition(part)
		if err != nil {
			return err
		}
		if len(pi.rows) == 0 {
			st.order = append(st.order, pi)
		}
		pi.rows = append(pi.rows, int32(row))
		st.user(b.users[u].slot)
		if userPart[u] != noPartition && userPart[u] != part {
			shared = true
		}
		userPart[u] = part
	}
	workers := min(runtime.GOMAXPROCS(0), len(st.order))
	switch {
	case shared:
		// In input order across partitions, as that user's events came.
		st.mixed = st.mixed[:0]
		for row, flag := range b.rowFlag {
			if flag&rowApplied != 0 {
				st.mixed = append(st.mixed, int32(row))
			}
		}
		st.learn(s, rows, st.mixed, nil, topK)
	case workers <= 1:
		for _, pi := range st.order {
			st.learn(s, rows, pi.rows, pi, topK)
		}
	default:
		var next atomic.Int32
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(st.order); i = int(next.Add(1)) - 1 {
					st.learn(s, rows, st.order[i].rows, st.order[i], topK)
				}
			})
		}
		wg.Wait()
	}
	st.count()
	return nil
}

// learn runs rows of the batch, all of partition pi, or (pi nil) of any
// partition in input order: each is learned by its partition's index and
// its user's window, and a user's items are chosen at their last row.
func (st *retrievalStage) learn(s *Scorer, rows schemas.EventRows, list []int32, pi *partitionIndex, topK int) {
	b := &s.b
	maxItems := st.cfg.Index.MaxItems
	one := pi
	for _, r := range list {
		row := int(r)
		u := b.rowUser[row]
		bu := &b.users[u]
		ur := &st.users[bu.slot]
		part := rows.Partition.Value(row)
		if one == nil {
			pi = st.parts[part]
		}
		if b.rowFlag[row]&rowColdRestart != 0 || ur.partition != part {
			ur.reset()
			ur.partition = part
		}
		code := rows.Type.Value(row)
		if id := rows.ItemID.Value(row); id != "" && int(code) < len(st.weights) {
			item := pi.intern(id, maxItems)
			if w := st.weights[code]; item >= 0 && w > 0 {
				pi.index.Observe(&ur.window, retrieval.Visit{Item: item, TsMs: int64(rows.Ts.Value(row)), Weight: w})
			}
			if item >= 0 && st.excludeType[code] && !slices.Contains(ur.excluded, item) {
				if len(ur.excluded) >= st.maxExclude {
					ur.excluded = slices.Delete(ur.excluded, 0, len(ur.excluded)-st.maxExclude+1)
				}
				ur.excluded = append(ur.excluded, item)
			}
		}
		if r == bu.lastRow {
			st.recommend(u, pi, ur, topK)
		}
	}
}

func (st *retrievalStage) recommend(u int32, pi *partitionIndex, ur *userRecent, topK int) {
	var exclude func(int32) bool
	if len(ur.excluded) > 0 {
		exclude = func(it int32) bool { return slices.Contains(ur.excluded, it) }
	}
	start := len(pi.recItems)
	pi.recItems = pi.retriever.Recommend(&ur.window, topK, exclude, pi.recItems)
	for _, c := range pi.retriever.Candidates()[:len(pi.recItems)-start] {
		pi.recScores = append(pi.recScores, c.Final)
	}
	st.recs[u] = recentRecs{pi: pi, start: int32(start), n: int32(len(pi.recItems) - start)}
}

// appendRecord fills r's items and scores for batch user u, in the
// vocabulary of the user's partition.
func (st *retrievalStage) appendRecord(u int32, ids []string, scores []float32) ([]string, []float32) {
	rr := st.recs[u]
	for j := rr.start; j < rr.start+rr.n; j++ {
		ids = append(ids, rr.pi.ids[rr.pi.recItems[j]])
		scores = append(scores, rr.pi.recScores[j])
	}
	return ids, scores
}

// stats returns the items known and the visits dropped, summed over
// partitions, as of the last batch; safe from any goroutine.
func (st *retrievalStage) stats() (items int, dropped int64) {
	return int(st.items.Load()), st.dropped.Load()
}

// count refreshes what stats returns.
func (st *retrievalStage) count() {
	var items int
	var dropped int64
	for _, pi := range st.parts {
		items += len(pi.ids)
		dropped += pi.index.Dropped()
	}
	st.items.Store(int64(items))
	st.dropped.Store(dropped)
}

// savedUser is a user whose retrieval state a checkpoint keeps.
type savedUser struct {
	slot int32
	id   string
}

// usersByPartition lists the store's users with retrieval state, by
// partition, least recently refreshed first.
func (st *retrievalStage) usersByPartition(store *state.Store) map[int32][]savedUser {
	out := map[int32][]savedUser{}
	store.EachSlot(func(slot int32, id string) bool {
		if int(slot) < len(st.users) && st.users[slot].partition != noPartition {
			p := st.users[slot].partition
			out[p] = append(out[p], savedUser{slot, id})
		}
		return true
	})
	return out
}
