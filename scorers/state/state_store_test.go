package state

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/scorers/models"
)

func TestNewStateStoreValidates(t *testing.T) {
	for _, tc := range []struct {
		dim, exclude, users int
		want                string
	}{
		{0, 1, 1, "dim must be > 0"},
		{4, -1, 1, "max_exclude must be in"},
		{4, 1, 0, "max_users must be in"},
	} {
		if _, err := NewVectorStore(tc.dim, tc.exclude, tc.users); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewVectorStore(%d, %d, %d) = %v, want %q", tc.dim, tc.exclude, tc.users, err, tc.want)
		}
	}
}

// slotOf returns the user's slot, inserting it if needed, as a batch does.
func slotOf(s *Store, id string) int32 {
	if slot := s.Lookup(id); slot != NoSlot {
		s.Touch(slot)
		return slot
	}
	return s.Insert(id)
}

func TestStateStoreEvictsLeastRecentlyTouched(t *testing.T) {
	for _, tc := range []struct {
		name      string
		touches   []string           // in order; each adds 1 to state[0]
		kept      map[string]float32 // user -> state[0]
		evictions uint64
	}{
		{"fill only", []string{"a", "b", "c"}, map[string]float32{"a": 1, "b": 1, "c": 1}, 0},
		{"oldest goes", []string{"a", "b", "c", "d"}, map[string]float32{"b": 1, "c": 1, "d": 1}, 1},
		{"touch saves", []string{"a", "b", "c", "a", "d"}, map[string]float32{"a": 2, "c": 1, "d": 1}, 1},
		{"two go", []string{"a", "b", "c", "b", "d", "e"}, map[string]float32{"b": 2, "d": 1, "e": 1}, 2},
		{"touch tail then head", []string{"a", "b", "c", "a", "c", "c", "d", "e"}, map[string]float32{"c": 3, "d": 1, "e": 1}, 2},
		{"evicted user returns cold", []string{"a", "a", "b", "c", "d", "a"}, map[string]float32{"c": 1, "d": 1, "a": 1}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewVectorStore(2, 2, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range tc.touches {
				s.Vector(slotOf(s, id))[0] += 1
			}
			for _, id := range []string{"a", "b", "c", "d", "e"} {
				u, ok := s.Get(id)
				want, keep := tc.kept[id]
				if ok != keep {
					t.Errorf("%s kept=%v, want %v", id, ok, keep)
				}
				if ok && u.State[0] != want {
					t.Errorf("%s state[0] = %g, want %g", id, u.State[0], want)
				}
			}
			if s.Evictions() != tc.evictions || s.Len() != len(tc.kept) {
				t.Errorf("evictions %d len %d, want %d and %d", s.Evictions(), s.Len(), tc.evictions, len(tc.kept))
			}
		})
	}
}

func TestStateStoreEachPutRoundTrip(t *testing.T) {
	s, err := NewVectorStore(3, 4, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		u := UserState{
			UserID:     fmt.Sprintf("user-%d", i),
			State:      []float32{float32(i), -1, 0.5},
			NewestTsMs: int64(1000 * i),
			Partition:  int32(i % 2),
			Offset:     int64(i * 10),
			Bought:     []int32{int32(i), int32(i + 1), int32(i + 2), int32(i + 3), int32(i + 4)}, // one too many
		}
		if err := s.Put(u); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get("user-2")
	if !slices.Equal(got.Bought, []int32{3, 4, 5, 6}) {
		t.Fatalf("bought %v, want the newest 4 [3 4 5 6]", got.Bought)
	}
	slotOf(s, "user-1") // now the most recent

	var saved []UserState
	s.Each(func(u UserState) bool { saved = append(saved, u); return true })
	restored, _ := NewVectorStore(3, 4, 10)
	for _, u := range saved {
		if err := restored.Put(u); err != nil {
			t.Fatal(err)
		}
	}
	var again []UserState
	restored.Each(func(u UserState) bool { again = append(again, u); return true })
	if fmt.Sprint(saved) != fmt.Sprint(again) {
		t.Fatalf("restore changed the store:\n%v\n%v", saved, again)
	}
	if saved[len(saved)-1].UserID != "user-1" || saved[0].UserID != "user-0" {
		t.Fatalf("Each order %v..%v, want least recent user-0 first, user-1 last", saved[0].UserID, saved[len(saved)-1].UserID)
	}
	n := 0
	s.Each(func(UserState) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("Each went on after false: %d calls", n)
	}
	if err := s.Put(UserState{UserID: "x", State: []float32{1}}); err == nil {
		t.Fatal("Put of a state of the wrong width was accepted")
	}
}

func TestStateStoreGatherScatter(t *testing.T) {
	s, _ := NewVectorStore(2, 1, 4)
	a, b := s.Insert("a"), s.Insert("b")
	s.Scatter([]int32{b, a}, []float32{1, 2, 3, 4})
	buf := make([]float32, 4)
	s.Gather([]int32{a, b}, buf)
	if !slices.Equal(buf, []float32{3, 4, 1, 2}) {
		t.Fatalf("gather after scatter = %v", buf)
	}
}

// TestStateStoreBytesPerUser measures the memory one user costs with the
// default shape (D=64, 32 bought items, 12-byte ids).
func TestStateStoreBytesPerUser(t *testing.T) {
	const users = 200_000
	perUser := measureStoreBytes(t, 64, 32, users)
	t.Logf("state store: %.0f bytes per user (D=64, M=32, 12-byte ids, %d users)", perUser, users)
	// 256 state + 128 bought + 24 meta + 8 links + 16 id + id bytes + map
	// entry: about 500; growth slack of the arena may add up to half again.
	if perUser > 900 {
		t.Fatalf("%.0f bytes per user, want at most 900", perUser)
	}
}

// BenchmarkStateStoreBytesPerUser reports the memory per stored user of the
// default shape (D=64, 32 bought items).
func BenchmarkStateStoreBytesPerUser(b *testing.B) {
	for range b.N {
		b.ReportMetric(measureStoreBytes(b, 64, 32, 100_000), "bytes/user")
	}
}

// measureStoreBytes returns the heap a store of users users takes per user.
func measureStoreBytes(tb testing.TB, dim, exclude, users int) float64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := NewVectorStore(dim, exclude, users)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range users {
		s.Insert(fmt.Sprintf("user-%07d", i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(users)
}

func TestHistoryStoreKeepsNewest(t *testing.T) {
	if _, err := NewHistoryStore(0, 1, 1); err == nil || !strings.Contains(err.Error(), "history length must be in") {
		t.Fatalf("NewHistoryStore(0) = %v", err)
	}
	s, err := NewHistoryStore(3, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(UserState{UserID: "a", History: []int32{1, 2, 3, 4, 5}, Bought: []int32{9}, Offset: 7}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get("a")
	if !slices.Equal(got.History, []int32{3, 4, 5}) || got.State != nil || got.Offset != 7 || s.Dim() != 0 || s.HistoryLen() != 3 {
		t.Fatalf("history %v state %v offset %d", got.History, got.State, got.Offset)
	}
	if err := s.Put(UserState{UserID: "b", State: []float32{1}}); err == nil {
		t.Fatal("a history store took a state vector")
	}
	states, _ := NewVectorStore(2, 1, 2)
	if err := states.Put(UserState{UserID: "c", State: []float32{1, 2}, History: []int32{1}}); err == nil {
		t.Fatal("a state store took a history")
	}
}

func TestStateStoreExpire(t *testing.T) {
	for _, tc := range []struct {
		name    string
		newest  map[string]int64 // user -> newest event time, inserted in this order
		order   []string
		cutoff  int64
		keep    int
		kept    []string
		expired int
	}{
		{"none idle", map[string]int64{"a": 10, "b": 20}, []string{"a", "b"}, 5, 0, []string{"a", "b"}, 0},
		{"idle tail goes", map[string]int64{"a": 1, "b": 2, "c": 30}, []string{"a", "b", "c"}, 5, 0, []string{"c"}, 2},
		{"stops at a recent user", map[string]int64{"a": 1, "b": 30, "c": 2}, []string{"a", "b", "c"}, 5, 0, []string{"b", "c"}, 1},
		{"keeps the batch's users", map[string]int64{"a": 1, "b": 2, "c": 3}, []string{"a", "b", "c"}, 5, 2, []string{"b", "c"}, 1},
		{"nothing applied yet", map[string]int64{"a": NoTimestamp, "b": 30}, []string{"a", "b"}, 5, 0, []string{"b"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := NewVectorStore(1, 1, 10)
			for _, u := range tc.order {
				s.meta[s.Insert(u)].newestTsMs = tc.newest[u]
			}
			if n := s.Expire(tc.cutoff, tc.keep); n != tc.expired || s.Expiries() != uint64(tc.expired) {
				t.Fatalf("Expire = %d (counted %d), want %d", n, s.Expiries(), tc.expired)
			}
			var kept []string
			s.Each(func(u UserState) bool { kept = append(kept, u.UserID); return true })
			if !slices.Equal(kept, tc.kept) || s.Len() != len(tc.kept) {
				t.Fatalf("kept %v, want %v", kept, tc.kept)
			}
			// Freed slots are reused before the store grows or evicts.
			slots := len(s.ids)
			for i := range tc.expired {
				s.Insert(fmt.Sprintf("new-%d", i))
			}
			if len(s.ids) != slots || s.Evictions() != 0 || s.Len() != len(tc.order) {
				t.Fatalf("after reinserting: %d slots (was %d), %d evictions, %d users", len(s.ids), slots, s.Evictions(), s.Len())
			}
		})
	}
}

func TestStateStoreReshape(t *testing.T) {
	s, _ := NewVectorStore(2, 3, 4)
	for i, u := range []string{"a", "b"} {
		if err := s.Put(UserState{UserID: u, State: []float32{float32(i + 1), 5}, Bought: []int32{1, 2, 3}, NewestTsMs: 100, Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Same layout, new item indices: 1 is gone, 2 -> 7, 3 -> 8; M 3 -> 1.
	s.Reshape(2, 0, 1, []int32{0, 0, 7, 8}, false)
	a, _ := s.Get("a")
	if !slices.Equal(a.State, []float32{1, 5}) || !slices.Equal(a.Bought, []int32{8}) || a.NewestTsMs != 100 || s.MaxExclude() != 1 {
		t.Fatalf("after remap: %+v", a)
	}
	// To a history store: states go, users, clocks and positions stay.
	s.Reshape(0, 4, 1, nil, true)
	b, ok := s.Get("b")
	if !ok || b.State != nil || len(b.History) != 0 || b.Offset != 1 || !slices.Equal(b.Bought, []int32{8}) || s.Dim() != 0 || s.HistoryLen() != 4 {
		t.Fatalf("after the switch to histories: %+v", b)
	}
	if err := s.Put(UserState{UserID: "b", History: []int32{3, 4}, Offset: 2}); err != nil {
		t.Fatal(err)
	}
	s.Reshape(0, 4, 1, []int32{0, 0, 0, 5, 6}, false)
	if b, _ = s.Get("b"); !slices.Equal(b.History, []int32{5, 6}) {
		t.Fatalf("history after remap: %v", b.History)
	}
	// Back to states of another width: cold.
	s.Reshape(3, 0, 2, nil, true)
	if b, _ = s.Get("b"); !slices.Equal(b.State, []float32{0, 0, 0}) || b.History != nil || s.Len() != 2 {
		t.Fatalf("after the switch back: %+v", b)
	}
}

// TestHistoryStoreBytesPerUser measures the memory one user of a sequence
// model costs (H=50, M=32, 12-byte ids).
func TestHistoryStoreBytesPerUser(t *testing.T) {
	const users = 200_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := NewHistoryStore(models.DefaultHistory, 32, users)
	if err != nil {
		t.Fatal(err)
	}
	for i := range users {
		s.Insert(fmt.Sprintf("user-%07d", i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	perUser := float64(after.HeapAlloc-before.HeapAlloc) / users
	t.Logf("history store: %.0f bytes per user (H=%d, M=32, 12-byte ids, %d users)", perUser, models.DefaultHistory, users)
	// 200 history + 128 bought + 24 meta + 8 links + 16 id + id bytes + map
	// entry: about 450, plus growth slack of the arenas.
	if perUser > 800 {
		t.Fatalf("%.0f bytes per user, want at most 800", perUser)
	}
}
