package drills

import (
	"strings"
	"testing"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/schemas"
)

func TestAccount(t *testing.T) {
	records := []inputRecord{
		{kind: generator.KindValid, base: 0},
		{kind: generator.KindValid, base: 1},
		{kind: schemas.ReasonMalformedJSON, base: 2},
		{kind: schemas.ReasonOversize, base: -1},
	}
	positions := []position{{0, 0}, {1, 0}, {0, 1}, {1, 1}}
	tests := []struct {
		name           string
		events         []position
		dead           map[position]string
		lost           int
		misrouted      string // a substring of the first misrouted entry; "" for none
		applied, nDead int
	}{
		{"all accounted", []position{{0, 0}, {1, 0}},
			map[position]string{{0, 1}: schemas.ReasonMalformedJSON, {1, 1}: schemas.ReasonOversize}, 0, "", 2, 2},
		{"a valid event lost", []position{{0, 0}},
			map[position]string{{0, 1}: schemas.ReasonMalformedJSON, {1, 1}: schemas.ReasonOversize}, 1, "", 1, 2},
		{"a bad record lost", []position{{0, 0}, {1, 0}},
			map[position]string{{0, 1}: schemas.ReasonMalformedJSON}, 1, "", 2, 1},
		{"wrong reason", []position{{0, 0}, {1, 0}},
			map[position]string{{0, 1}: schemas.ReasonMissingField, {1, 1}: schemas.ReasonOversize}, 0, "dead-lettered as missing_field", 2, 2},
		{"valid event dead-lettered", []position{{1, 0}},
			map[position]string{{0, 0}: "x", {0, 1}: schemas.ReasonMalformedJSON, {1, 1}: schemas.ReasonOversize}, 0, "valid event at 0@0 was dead-lettered", 1, 3},
		{"bad record applied", []position{{0, 0}, {1, 0}, {0, 1}},
			map[position]string{{1, 1}: schemas.ReasonOversize}, 0, "was applied", 2, 1},
		{"an event never produced", []position{{0, 0}, {1, 0}, {3, 9}},
			map[position]string{{0, 1}: schemas.ReasonMalformedJSON, {1, 1}: schemas.ReasonOversize}, 0, "never produced", 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &outcome{events: map[position]bool{}, dead: tt.dead}
			for _, p := range tt.events {
				o.events[p] = true
			}
			a := account(records, positions, o)
			if a.lost != tt.lost || a.applied != tt.applied || a.deadLettered != tt.nDead || a.produced != 4 {
				t.Errorf("lost %d applied %d dead %d produced %d; want %d %d %d 4", a.lost, a.applied, a.deadLettered, a.produced, tt.lost, tt.applied, tt.nDead)
			}
			switch {
			case tt.misrouted == "" && len(a.misrouted) > 0:
				t.Errorf("misrouted = %v, want none", a.misrouted)
			case tt.misrouted != "" && (len(a.misrouted) == 0 || !strings.Contains(a.misrouted[0], tt.misrouted)):
				t.Errorf("misrouted = %v, want one containing %q", a.misrouted, tt.misrouted)
			}
		})
	}
}

func TestLostRanges(t *testing.T) {
	tests := []struct {
		name    string
		lostAt  []position
		starts  map[int32]int64
		ranges  string
		deleted int
	}{
		{"one range per partition", []position{{0, 5}, {0, 3}, {0, 4}, {2, 9}}, nil, "p0 3-5; p2 9", 0},
		{"gaps split ranges", []position{{1, 1}, {1, 2}, {1, 7}}, map[int32]int64{}, "p1 1-2,7", 0},
		{"below the log start: deleted by the broker", []position{{0, 1559}, {0, 1560}, {0, 1900}, {3, 4}},
			map[int32]int64{0: 1900, 3: 0}, "p0 1559-1560,1900; p3 4", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ranges, deleted := accounting{lostAt: tt.lostAt}.lostRanges(tt.starts)
			if ranges != tt.ranges || deleted != tt.deleted {
				t.Errorf("lostRanges = %q, %d; want %q, %d", ranges, deleted, tt.ranges, tt.deleted)
			}
		})
	}
}

func rec(user string, partition int32, offset int64, model string) schemas.Recommendation {
	return schemas.Recommendation{UserID: user, Items: []string{"i1", "i2"}, Scores: []float32{0.5, 0.25}, ModelVersion: model,
		Version: uint64(offset), EventTsMs: 1000, ProducedAtMs: 2000, Partition: partition, Offset: offset}
}

func outcomeOf(recs ...schemas.Recommendation) *outcome {
	o := &outcome{chFinal: map[string]schemas.Recommendation{}, topicNewest: map[string]topicRecord{}}
	for _, r := range recs {
		o.chFinal[r.UserID] = r
		o.topicNewest[r.UserID] = topicRecord{raw: schemas.AppendRecommendationJSON(nil, &r), rec: r}
	}
	return o
}

func TestCompareFinal(t *testing.T) {
	ref := outcomeOf(rec("a", 0, 10, "m1"), rec("b", 1, 20, "m1"))
	identity := offsetMap{identity: true}

	if c := compareFinal(ref, outcomeOf(rec("a", 0, 10, "m1"), rec("b", 1, 20, "m1")), identity, nil); c.eitherDiffer != 0 || c.compared != 2 {
		t.Fatalf("identical outcomes: %+v", c)
	}
	c := compareFinal(ref, outcomeOf(rec("a", 0, 10, "m1"), rec("b", 1, 20, "m2")), identity, nil)
	if c.eitherDiffer != 1 || c.clickhouse != 1 || c.topic != 1 || len(c.examples) != 2 {
		t.Fatalf("one user scored by another model: %+v", c)
	}
	c = compareFinal(ref, outcomeOf(rec("a", 0, 10, "m1")), identity, nil)
	if c.eitherDiffer != 1 || !strings.Contains(c.examples[0], "(missing)") {
		t.Fatalf("a user missing: %+v", c)
	}
	if c := compareFinal(ref, outcomeOf(rec("a", 0, 10, "m1")), identity, func(u string) bool { return u == "a" }); c.eitherDiffer != 0 || c.compared != 1 {
		t.Fatalf("only user a compared: %+v", c)
	}

	// A burst of 3 records before offset 20 of partition 1 shifts b's
	// version and offset by 3; the map brings them back.
	shifted := offsetMap{byPartition: map[int32]map[int64]int64{0: {10: 10}, 1: {23: 20}}}
	if c := compareFinal(ref, outcomeOf(rec("a", 0, 10, "m1"), rec("b", 1, 23, "m1")), shifted, nil); c.eitherDiffer != 0 {
		t.Fatalf("shifted outcome mapped back: %+v", c)
	}
	// A record that reflects a poison record's offset is a difference.
	if c := compareFinal(ref, outcomeOf(rec("a", 0, 10, "m1"), rec("b", 1, 22, "m1")), shifted, nil); c.eitherDiffer != 1 {
		t.Fatalf("a version at a poison offset: %+v", c)
	}
}

func TestCleanSwitches(t *testing.T) {
	tests := []struct {
		runs []string
		want bool
	}{
		{nil, true},
		{[]string{"v1"}, true},
		{[]string{"v1", "v2"}, true},
		{[]string{"v1", "v2", "v1"}, true},
		{[]string{"v2", "v1"}, true},
		{[]string{"v2"}, true},
		{[]string{"v1", "v2", "v1", "v2"}, false},
		{[]string{"v2", "v1", "v2"}, false},
	}
	for _, tt := range tests {
		if got := cleanSwitches(tt.runs, "v1", "v2"); got != tt.want {
			t.Errorf("cleanSwitches(%v) = %v, want %v", tt.runs, got, tt.want)
		}
	}
}

func TestSecondsPrecision(t *testing.T) {
	r := rec("a", 0, 1, "m")
	r.ProducedAtMs = 1_767_225_600_123
	if got := secondsPrecision(r).ProducedAtMs; got != 1_767_225_600_000 {
		t.Fatalf("secondsPrecision = %d", got)
	}
}
