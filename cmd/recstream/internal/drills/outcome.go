package drills

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/sinks"
)

// topicRecord is one record of the output topic.
type topicRecord struct {
	raw []byte
	rec schemas.Recommendation
	at  position // where it is in the output topic
}

// outcome is what a run left in its sinks and its dead-letter topic.
type outcome struct {
	// chFinal is each user's row of ClickHouse recommendations FINAL.
	chFinal map[string]schemas.Recommendation
	// chRows counts the rows written (before FINAL); chRewrites the rows
	// that repeat a (user, version) already written; chConflicts the
	// (user, version) pairs whose rows differ.
	chRows, chRewrites int64
	chConflicts        []string
	// topic holds every record of the output topic in log order per
	// partition; topicNewest the newest record of each key (what
	// compaction keeps).
	topic       []topicRecord
	topicNewest map[string]topicRecord
	// topicRewrites counts records that repeat a (key, version) already
	// written; topicConflicts the pairs whose values differ.
	topicRewrites  int64
	topicConflicts []string
	// events are the input positions of ClickHouse events FINAL.
	events map[position]bool
	// dead maps each dead-lettered input position to its reason;
	// deadRecords counts the dead-letter records (rewrites included).
	dead        map[position]string
	deadRecords int64
}

// collectOutcome reads everything a run wrote.
func collectOutcome(ctx context.Context, env *environment, database, input, dlq, output string) (*outcome, error) {
	o := &outcome{chFinal: map[string]schemas.Recommendation{}, topicNewest: map[string]topicRecord{},
		events: map[position]bool{}, dead: map[position]string{}}
	if err := o.readClickHouse(ctx, env, database); err != nil {
		return nil, err
	}
	recs, err := consumeTopic(ctx, env.kafka.Addrs(), output)
	if err != nil {
		return nil, err
	}
	type kv struct {
		key     string
		version uint64
	}
	seen := map[kv][]byte{}
	var dec schemas.RecommendationDecoder
	for _, r := range recs {
		tr := topicRecord{raw: r.Value, at: position{r.Partition, r.Offset}}
		if err := dec.Decode(r.Value, &tr.rec); err != nil {
			return nil, fmt.Errorf("output record %s/%d@%d does not decode: %w", output, r.Partition, r.Offset, err)
		}
		if string(r.Key) != tr.rec.UserID {
			return nil, fmt.Errorf("output record %s/%d@%d: key %q is not user_id %q", output, r.Partition, r.Offset, r.Key, tr.rec.UserID)
		}
		k := kv{tr.rec.UserID, tr.rec.Version}
		if prev, ok := seen[k]; ok {
			o.topicRewrites++
			if !bytes.Equal(prev, r.Value) && len(o.topicConflicts) < 1000 {
				o.topicConflicts = append(o.topicConflicts, fmt.Sprintf("%s@%d:\n  %s\n  %s", k.key, k.version, prev, r.Value))
			}
		} else {
			seen[k] = r.Value
		}
		o.topic = append(o.topic, tr)
		o.topicNewest[tr.rec.UserID] = tr // later offsets win, as compaction keeps them
	}
	dead, err := consumeTopic(ctx, env.kafka.Addrs(), dlq)
	if err != nil {
		return nil, err
	}
	for _, r := range dead {
		o.deadRecords++
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[sinks.HeaderSourceTopic] != input {
			return nil, fmt.Errorf("dead letter %s/%d@%d names source topic %q, want %q", dlq, r.Partition, r.Offset, h[sinks.HeaderSourceTopic], input)
		}
		p, perr := strconv.ParseInt(h[sinks.HeaderSourcePartition], 10, 32)
		off, oerr := strconv.ParseInt(h[sinks.HeaderSourceOffset], 10, 64)
		if perr != nil || oerr != nil {
			return nil, fmt.Errorf("dead letter %s/%d@%d lacks its source position: %v", dlq, r.Partition, r.Offset, h)
		}
		o.dead[position{int32(p), off}] = h[sinks.HeaderReason]
	}
	return o, nil
}

func (o *outcome) readClickHouse(ctx context.Context, env *environment, database string) error {
	conn, err := env.openClickHouse(database)
	if err != nil {
		return err
	}
	defer conn.Close()
	const cols = `user_id, items, scores, model_version, version, event_ts_ms, toUInt32(produced_at), src_partition, src_offset`
	scan := func(query string, each func(schemas.Recommendation)) error {
		rows, err := conn.Query(ctx, query)
		if err != nil {
			return fmt.Errorf("query clickhouse %s: %w", database, err)
		}
		defer rows.Close()
		for rows.Next() {
			var r schemas.Recommendation
			var at uint32
			if err := rows.Scan(&r.UserID, &r.Items, &r.Scores, &r.ModelVersion, &r.Version, &r.EventTsMs, &at, &r.Partition, &r.Offset); err != nil {
				return fmt.Errorf("read clickhouse %s recommendations: %w", database, err)
			}
			// produced_at is stored in seconds (DateTime on old servers).
			r.ProducedAtMs = int64(at) * 1000
			each(r)
		}
		return rows.Err()
	}
	if err := scan("SELECT "+cols+" FROM recommendations FINAL", func(r schemas.Recommendation) {
		o.chFinal[r.UserID] = r
	}); err != nil {
		return err
	}
	type kv struct {
		user    string
		version uint64
	}
	seen := map[kv]uint64{}
	if err := scan("SELECT "+cols+" FROM recommendations", func(r schemas.Recommendation) {
		o.chRows++
		h := fnv.New64a()
		h.Write(schemas.AppendRecommendationJSON(nil, &r))
		sum := h.Sum64()
		k := kv{r.UserID, r.Version}
		if prev, ok := seen[k]; ok {
			o.chRewrites++
			if prev != sum && len(o.chConflicts) < 1000 {
				o.chConflicts = append(o.chConflicts, fmt.Sprintf("%s@%d", k.user, k.version))
			}
			return
		}
		seen[k] = sum
	}); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT src_partition, src_offset FROM events FINAL")
	if err != nil {
		return fmt.Errorf("query clickhouse %s events: %w", database, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p position
		if err := rows.Scan(&p.Partition, &p.Offset); err != nil {
			return fmt.Errorf("read clickhouse %s events: %w", database, err)
		}
		o.events[p] = true
	}
	return rows.Err()
}

// consumeTopic reads every record of topic, from the start to the end
// offsets it finds first.
func consumeTopic(ctx context.Context, brokers []string, topic string) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	end := map[int32]int64{}
	var want int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			end[o.Partition] = o.Offset
			want += o.Offset
		}
	})
	if want == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %d of %d records: %w", topic, len(out), want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < end[r.Partition] {
				out = append(out, r)
			}
		})
	}
	return out, nil
}

// accounting checks the first guarantee, every input record accounted
// for: each valid event is in ClickHouse events FINAL, each bad record in
// the dead-letter topic with the reason the contract gives it, and nothing
// else is in either.
type accounting struct {
	produced, valid, invalid int
	applied                  int        // valid records found in events FINAL
	deadLettered             int        // distinct input positions in the dead-letter topic
	lost                     int        // records in neither
	lostAt                   []position // where they are, in input order
	misrouted                []string
}

// lostRanges describes where the lost records are, as offset ranges per
// partition ("p0 1559-1899"), and how many of them lie below their
// partition's log start offset in starts: records the broker deleted
// (retention) before they were read.
func (a accounting) lostRanges(starts map[int32]int64) (ranges string, deleted int) {
	byPart := map[int32][]int64{}
	for _, p := range a.lostAt {
		byPart[p.Partition] = append(byPart[p.Partition], p.Offset)
		if p.Offset < starts[p.Partition] {
			deleted++
		}
	}
	var parts []string
	for _, part := range slices.Sorted(maps.Keys(byPart)) {
		offs := byPart[part]
		slices.Sort(offs)
		var rs []string
		for i := 0; i < len(offs); {
			j := i
			for j+1 < len(offs) && offs[j+1] == offs[j]+1 {
				j++
			}
			if i == j {
				rs = append(rs, strconv.FormatInt(offs[i], 10))
			} else {
				rs = append(rs, fmt.Sprintf("%d-%d", offs[i], offs[j]))
			}
			i = j + 1
		}
		parts = append(parts, fmt.Sprintf("p%d %s", part, strings.Join(first(rs, 8), ",")))
	}
	return strings.Join(parts, "; "), deleted
}

func account(records []inputRecord, positions []position, o *outcome) accounting {
	a := accounting{produced: len(records), deadLettered: len(o.dead)}
	known := make(map[position]bool, len(records))
	for i, r := range records {
		p := positions[i]
		known[p] = true
		reason, dead := o.dead[p]
		applied := o.events[p]
		if r.kind == generator.KindValid {
			a.valid++
		} else {
			a.invalid++
		}
		switch {
		case !dead && !applied:
			a.lost++
			a.lostAt = append(a.lostAt, p)
		case r.kind == generator.KindValid && applied:
			a.applied++
			if dead {
				a.misrouted = append(a.misrouted, fmt.Sprintf("valid event at %d@%d is also dead-lettered (%s)", p.Partition, p.Offset, reason))
			}
		case r.kind == generator.KindValid:
			a.misrouted = append(a.misrouted, fmt.Sprintf("valid event at %d@%d was dead-lettered (%s)", p.Partition, p.Offset, reason))
		case applied:
			a.misrouted = append(a.misrouted, fmt.Sprintf("bad record (%s) at %d@%d was applied", r.kind, p.Partition, p.Offset))
		case reason != r.kind:
			a.misrouted = append(a.misrouted, fmt.Sprintf("bad record at %d@%d dead-lettered as %s, want %s", p.Partition, p.Offset, reason, r.kind))
		}
	}
	for p := range o.events {
		if !known[p] {
			a.misrouted = append(a.misrouted, fmt.Sprintf("events FINAL holds an event at %d@%d that was never produced", p.Partition, p.Offset))
		}
	}
	for p := range o.dead {
		if !known[p] {
			a.misrouted = append(a.misrouted, fmt.Sprintf("dead-letter topic holds a record of %d@%d that was never produced", p.Partition, p.Offset))
		}
	}
	slices.Sort(a.misrouted)
	return a
}

// offsetMap maps each valid input record's offset in a scenario's input to
// its offset in the reference input (the burst of poison-burst shifts the
// records after it). Versions are input offsets, so it maps versions too.
type offsetMap struct {
	byPartition map[int32]map[int64]int64
	identity    bool
}

// newOffsetMap pairs the base records of a scenario's input with the
// reference's. It fails when a base record landed in another partition
// than in the reference: the two inputs would not be the same.
func newOffsetMap(records []inputRecord, positions, refPositions []position) (offsetMap, error) {
	m := offsetMap{byPartition: map[int32]map[int64]int64{}, identity: true}
	for i, r := range records {
		if r.base < 0 {
			m.identity = false
			continue
		}
		got, want := positions[i], refPositions[r.base]
		if got.Partition != want.Partition {
			return m, fmt.Errorf("input record %d is in partition %d, in partition %d of the reference: the inputs differ", r.base, got.Partition, want.Partition)
		}
		if got.Offset != want.Offset {
			m.identity = false
		}
		pm := m.byPartition[got.Partition]
		if pm == nil {
			pm = map[int64]int64{}
			m.byPartition[got.Partition] = pm
		}
		pm[got.Offset] = want.Offset
	}
	return m, nil
}

// toReference rewrites r's version and offset to the reference's; false
// when r's offset is not a base record (it reflects a poison record).
func (m offsetMap) toReference(r schemas.Recommendation) (schemas.Recommendation, bool) {
	if m.identity {
		return r, true
	}
	off, ok := m.byPartition[r.Partition][r.Offset]
	if !ok || r.Version > math.MaxInt64 {
		return r, false
	}
	ver, vok := m.byPartition[r.Partition][int64(r.Version)]
	if !vok {
		return r, false
	}
	r.Offset, r.Version = off, uint64(ver)
	return r, true
}

// comparison is the second guarantee: final recommendations equal the
// fault-free reference's.
type comparison struct {
	compared                        int // users compared
	clickhouse, topic, eitherDiffer int
	examples                        []string
}

// compareFinal compares the users include accepts (nil: all) in both sinks
// of got with ref, mapping got's positions with m.
func compareFinal(ref, got *outcome, m offsetMap, include func(user string) bool) comparison {
	var c comparison
	users := map[string]bool{}
	for u := range ref.chFinal {
		users[u] = true
	}
	for u := range ref.topicNewest {
		users[u] = true
	}
	for u := range got.chFinal {
		users[u] = true
	}
	for u := range got.topicNewest {
		users[u] = true
	}
	sorted := make([]string, 0, len(users))
	for u := range users {
		if include == nil || include(u) {
			sorted = append(sorted, u)
		}
	}
	slices.Sort(sorted)
	render := func(r schemas.Recommendation, ok bool) string {
		if !ok {
			return "(missing)"
		}
		return renderRec(r)
	}
	for _, u := range sorted {
		c.compared++
		differs := false
		want, wok := ref.chFinal[u]
		have, hok := got.chFinal[u]
		if hok {
			var mapped bool
			if have, mapped = m.toReference(have); !mapped {
				hok = false
			}
		}
		if w, h := render(want, wok), render(have, hok); w != h {
			c.clickhouse++
			differs = true
			if len(c.examples) < 5 {
				c.examples = append(c.examples, fmt.Sprintf("clickhouse %s:\n  reference %s\n  drill     %s", u, w, h))
			}
		}
		wt, wtok := ref.topicNewest[u]
		ht, htok := got.topicNewest[u]
		var w, h string
		switch {
		case wtok && htok && m.identity:
			w, h = string(wt.raw), string(ht.raw) // byte for byte
		default:
			hr, mapped := ht.rec, htok
			if htok {
				hr, mapped = m.toReference(ht.rec)
			}
			w, h = render(wt.rec, wtok), render(hr, mapped)
		}
		if w != h {
			c.topic++
			differs = true
			if len(c.examples) < 5 {
				c.examples = append(c.examples, fmt.Sprintf("output topic %s:\n  reference %s\n  drill     %s", u, w, h))
			}
		}
		if differs {
			c.eitherDiffer++
		}
	}
	return c
}

// renderRec is r in the output topic's JSON form, for comparisons.
func renderRec(r schemas.Recommendation) string {
	return string(schemas.AppendRecommendationJSON(nil, &r))
}

// secondsPrecision is r with produced_at cut to whole seconds, as the
// ClickHouse table stores it (DateTime), so that a topic record compares
// with its ClickHouse row.
func secondsPrecision(r schemas.Recommendation) schemas.Recommendation {
	r.ProducedAtMs -= r.ProducedAtMs % 1000
	return r
}
