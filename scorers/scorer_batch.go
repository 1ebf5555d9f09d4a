package scorers

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/state"
)

// The per-batch work of Scorer.Score, in the order it runs: group the
// batch's rows by user, find or make each user's state slot, turn the
// events into model inputs, write the new states back, and build the
// recommendation records.

// batchUser is one user of the batch being scored.
type batchUser struct {
	firstRow  int32 // a row of the user, to read the id from
	nRows     int32
	rowStart  int32 // range of the user's rows in batchScratch.order
	slot      int32
	evStart   int32 // range of the user's applied events in the ev* arrays
	evCount   int32
	newestTs  int64
	logTs     int64 // log time of the newest applied event
	nExclude  int32
	nHist     int32
	partition int32
	offset    int64
	cold      bool  // restarts from a cold state (idle longer than idle_expiry)
	fresh     bool  // inserted into the store by this batch
	lastRow   int32 // the user's last applied row
}

// Flags of a batch row, set by prepareEvents.
const (
	rowApplied     uint8 = 1 << iota // not skipped as already applied
	rowColdRestart                   // the user restarts cold at this row
)

// batchScratch is reused from batch to batch so that scoring allocates
// little once warm.
type batchScratch struct {
	index   map[string]int32 // user id -> batch user
	users   []batchUser
	rowUser []int32
	rowFlag []uint8 // rowApplied, rowColdRestart
	order   []int32 // rows grouped by user, in input order within a user
	active  []int32 // batch users with events to apply, first-seen order
	runList []int32
	slots   []int32 // store slot of each batch user
	evItem  []int64
	evType  []int64
	evDecay []float32
	work    []float32 // D per batch user: states while they are updated
	hist    []int32   // H per batch user: sequence histories, oldest first
	exclude []int32   // M per batch user: their exclude lists
	scores  []float32 // modelK per batch user: their final top-K
	items   []int64
	bought  []int32
	histTmp []int32
	recIDs  []string
	recVals []float32
}

// group assigns each row to its batch user (first-seen order) and lists the
// rows of each user together, keeping their input order.
func (s *Scorer) group(rows schemas.EventRows, n int) error {
	b := &s.b
	b.users = b.users[:0]
	b.rowUser = slices.Grow(b.rowUser[:0], n)[:n]
	for i := range n {
		id := rows.UserID.Value(i)
		u, ok := b.index[id]
		if !ok {
			u = int32(len(b.users))
			b.index[id] = u
			b.users = append(b.users, batchUser{firstRow: int32(i)})
		}
		b.rowUser[i] = u
		b.users[u].nRows++
	}
	if len(b.users) > s.store.MaxUsers() {
		return fmt.Errorf("score batch: %d distinct users exceed max_users %d", len(b.users), s.store.MaxUsers())
	}
	var start int32
	for i := range b.users {
		b.users[i].rowStart = start
		start += b.users[i].nRows
		b.users[i].nRows = 0
	}
	b.order = slices.Grow(b.order[:0], n)[:n]
	for i, u := range b.rowUser {
		bu := &b.users[u]
		b.order[bu.rowStart+bu.nRows] = int32(i)
		bu.nRows++
	}
	return nil
}

// resolveSlots finds each batch user's slot in the store, inserting new
// users only after every known one was touched and idle users expired, so
// that neither the eviction that makes room nor the expiry takes a user of
// this batch.
func (s *Scorer) resolveSlots(rows schemas.EventRows) {
	b := &s.b
	b.slots = b.slots[:0]
	known := 0
	for i := range b.users {
		bu := &b.users[i]
		bu.slot = s.store.Lookup(rows.UserID.Value(int(bu.firstRow)))
		bu.fresh = bu.slot == state.NoSlot
		if bu.slot != state.NoSlot {
			s.store.Touch(bu.slot)
			known++
		}
	}
	if s.idleMs > 0 {
		for i := range int(rows.Ts.Len()) {
			s.clockMs = max(s.clockMs, int64(rows.Ts.Value(i)))
		}
		s.store.Expire(s.clockMs-s.idleMs, known)
	}
	for i := range b.users {
		bu := &b.users[i]
		if bu.slot == state.NoSlot {
			bu.slot = s.store.Insert(rows.UserID.Value(int(bu.firstRow)))
		}
		b.slots = append(b.slots, bu.slot)
	}
	s.evictions.Store(s.store.Evictions())
	s.expiries.Store(s.store.Expiries())
	s.users.Store(int64(s.store.Len()))
}

// prepareEvents turns each user's rows into model inputs (item index, type
// input, decay; a sequence model's history) and works out the user's new
// clock, position and exclude list, without touching the store yet; it
// flags the rows applied (and where a user restarts cold) for the
// retrieval stage, which needs no model inputs.
func (s *Scorer) prepareEvents(e *engine, rows schemas.EventRows) {
	b := &s.b
	nUsers := len(b.users)
	histLen := s.store.HistoryLen()
	b.evItem = b.evItem[:0]
	b.evType = b.evType[:0]
	b.evDecay = b.evDecay[:0]
	b.active = b.active[:0]
	b.exclude = slices.Grow(b.exclude[:0], nUsers*e.exclude)[:nUsers*e.exclude]
	b.hist = slices.Grow(b.hist[:0], nUsers*histLen)[:nUsers*histLen]
	b.rowFlag = slices.Grow(b.rowFlag[:0], len(b.rowUser))[:len(b.rowUser)]
	clear(b.rowFlag)
	// With the retrieval recommender no model runs: each applied event
	// only moves the user's clock and position (the stage reads the rows).
	modelInputs := s.retr == nil
	var skipped uint64
	for u := range b.users {
		bu := &b.users[u]
		bu.evStart = int32(len(b.evItem))
		bu.newestTs, bu.partition, bu.offset = s.store.Position(bu.slot)
		bu.cold = false
		b.bought = s.store.AppendBought(b.bought[:0], bu.slot)
		if histLen > 0 {
			b.histTmp = s.store.AppendHistory(b.histTmp[:0], bu.slot)
		}
		for _, row := range b.order[bu.rowStart : bu.rowStart+bu.nRows] {
			i := int(row)
			part, off := rows.Partition.Value(i), rows.Offset.Value(i)
			if bu.offset >= 0 && part == bu.partition && off <= bu.offset {
				skipped++
				continue
			}
			ts := int64(rows.Ts.Value(i))
			if s.idleMs > 0 && bu.newestTs != state.NoTimestamp && ts-bu.newestTs > s.idleMs {
				// Idle longer than idle_expiry: forget everything, as if
				// the user had been dropped (see Config.IdleExpiry).
				bu.cold, bu.newestTs = true, state.NoTimestamp
				b.rowFlag[i] |= rowColdRestart
				b.evItem, b.evType, b.evDecay = b.evItem[:bu.evStart], b.evType[:bu.evStart], b.evDecay[:bu.evStart]
				b.bought, b.histTmp = b.bought[:0], b.histTmp[:0]
			}
			decay, item, typ := float32(1), int64(0), int64(0)
			code := rows.Type.Value(i)
			if modelInputs {
				if bu.newestTs != state.NoTimestamp && ts > bu.newestTs {
					decay = models.DecayFactor(ts-bu.newestTs, s.halfLifeMs)
				}
				item, typ = int64(e.model.ItemIndex(rows.ItemID.Value(i))), e.typeInput[code]
				if item == 0 || typ == 0 {
					// Contributes exactly +0: see UserTowerGraph.
					item, typ = 0, 0
				}
			}
			bu.newestTs = max(bu.newestTs, ts)
			b.evItem = append(b.evItem, item)
			b.evType = append(b.evType, typ)
			b.evDecay = append(b.evDecay, decay)
			if histLen > 0 && item != 0 {
				b.histTmp = append(b.histTmp, int32(item))
			}
			if e.excludeType[code] && item != 0 && !slices.Contains(b.bought, int32(item)) {
				b.bought = append(b.bought, int32(item))
			}
			bu.partition, bu.offset, bu.logTs = part, off, int64(rows.LogTs.Value(i))
			b.rowFlag[i] |= rowApplied
			bu.lastRow = row
		}
		bu.evCount = int32(len(b.evItem)) - bu.evStart
		if len(b.bought) > e.exclude {
			b.bought = b.bought[len(b.bought)-e.exclude:]
		}
		bu.nExclude = int32(copy(b.exclude[u*e.exclude:(u+1)*e.exclude], b.bought))
		if histLen > 0 {
			h := b.histTmp[max(0, len(b.histTmp)-histLen):]
			bu.nHist = int32(copy(b.hist[u*histLen:(u+1)*histLen], h))
		}
		if bu.evCount > 0 {
			b.active = append(b.active, int32(u))
		}
	}
	if skipped > 0 {
		s.skipped.Add(skipped)
	}
}

// commit writes the batch's new states (when the model ran), histories,
// clocks, positions and exclude lists into the store, once every run has
// succeeded.
func (s *Scorer) commit(modelRan bool) {
	b := &s.b
	exclude, histLen := s.store.MaxExclude(), s.store.HistoryLen()
	if modelRan {
		// Users without applied events got their own state back unchanged.
		s.store.Scatter(b.slots, b.work)
	}
	var cold uint64
	for _, u := range b.active {
		bu := &b.users[u]
		s.store.SetPosition(bu.slot, bu.newestTs, bu.partition, bu.offset)
		s.store.SetBought(bu.slot, b.exclude[int(u)*exclude:int(u)*exclude+int(bu.nExclude)])
		if histLen > 0 {
			s.store.SetHistory(bu.slot, b.hist[int(u)*histLen:int(u)*histLen+int(bu.nHist)])
		}
		if bu.cold {
			cold++
		}
	}
	if cold > 0 {
		s.store.CountExpiries(cold)
		s.expiries.Store(s.store.Expiries())
	}
}

// buildRecords returns one record per active user, first-seen order.
func (s *Scorer) buildRecords(e *engine, rows schemas.EventRows) arrow.RecordBatch {
	b := &s.b
	k := e.modelK
	for _, u := range b.active {
		bu := &b.users[u]
		b.recIDs = b.recIDs[:0]
		b.recVals = b.recVals[:0]
		var bought []int32
		if e.filterExclude {
			bought = b.exclude[int(u)*e.exclude : int(u)*e.exclude+int(bu.nExclude)]
		}
		for j := range k {
			score := b.scores[int(u)*k+j]
			idx := b.items[int(u)*k+j]
			id := e.model.ItemID(idx)
			if score <= schemas.ModelMaskedScore || id == "" || len(b.recIDs) == e.topK ||
				(bought != nil && slices.Contains(bought, int32(idx))) {
				continue
			}
			b.recIDs = append(b.recIDs, id)
			b.recVals = append(b.recVals, score)
		}
		s.appendRecord(rows, bu, e.version)
	}
	return s.recs.NewRecord()
}

// appendRecord appends batch user bu's record, with the items and scores
// in b.recIDs and b.recVals.
func (s *Scorer) appendRecord(rows schemas.EventRows, bu *batchUser, version string) {
	r := schemas.Recommendation{
		UserID:       rows.UserID.Value(int(bu.firstRow)),
		Items:        s.b.recIDs,
		Scores:       s.b.recVals,
		ModelVersion: version,
		Version:      uint64(bu.offset),
		EventTsMs:    bu.newestTs,
		ProducedAtMs: bu.logTs,
		Partition:    bu.partition,
		Offset:       bu.offset,
	}
	s.recs.Append(&r)
}

// buildRetrievalRecords returns one record per active user, first-seen
// order, with the items the retrieval stage chose for them.
func (s *Scorer) buildRetrievalRecords(rows schemas.EventRows) arrow.RecordBatch {
	b := &s.b
	for _, u := range b.active {
		bu := &b.users[u]
		b.recIDs, b.recVals = s.retr.appendRecord(u, b.recIDs[:0], b.recVals[:0])
		s.appendRecord(rows, bu, s.retr.version)
	}
	return s.recs.NewRecord()
}
