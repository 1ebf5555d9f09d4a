package scorers

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
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
		if _, err := NewStateStore(tc.dim, tc.exclude, tc.users); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewStateStore(%d, %d, %d) = %v, want %q", tc.dim, tc.exclude, tc.users, err, tc.want)
		}
	}
}

// slotOf returns the user's slot, inserting it if needed, as a batch does.
func slotOf(s *StateStore, id string) int32 {
	if slot := s.lookup(id); slot != noSlot {
		s.touch(slot)
		return slot
	}
	return s.insert(id)
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
			s, err := NewStateStore(2, 2, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range tc.touches {
				s.state(slotOf(s, id))[0] += 1
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
	s, err := NewStateStore(3, 4, 10)
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
	restored, _ := NewStateStore(3, 4, 10)
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
	s, _ := NewStateStore(2, 1, 4)
	a, b := s.insert("a"), s.insert("b")
	s.scatter([]int32{b, a}, []float32{1, 2, 3, 4})
	buf := make([]float32, 4)
	s.gather([]int32{a, b}, buf)
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

func measureStoreBytes(tb testing.TB, dim, exclude, users int) float64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := NewStateStore(dim, exclude, users)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range users {
		s.insert(fmt.Sprintf("user-%07d", i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(users)
}
