package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.uber.org/zap/zaptest"
)

func filledStore(t *testing.T, users int, seed float32) *Store {
	t.Helper()
	st, err := NewVectorStore(4, 8, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < users; i++ {
		u := UserState{
			UserID:     fmt.Sprintf("u%03d", i),
			State:      []float32{seed + float32(i), -1, 0.5, float32(i) / 7},
			NewestTsMs: 1_700_000_000_000 + int64(i),
			Partition:  int32(i % 3),
			Offset:     int64(100 + i),
			Bought:     []int32{int32(i + 1), int32(i + 2)}[:i%3],
		}
		if err := st.Put(u); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func allUsers(st *Store) []UserState {
	var out []UserState
	st.Each(func(u UserState) bool {
		if u.Bought == nil {
			u.Bought = []int32{}
		}
		u.State = append([]float32(nil), u.State...)
		u.Bought = append([]int32{}, u.Bought...)
		out = append(out, u)
		return true
	})
	return out
}

func TestSaveLoadRoundTripKeepsStateAndOrder(t *testing.T) {
	ctx := context.Background()
	store, err := NewCheckpointStore(CheckpointConfig{Dir: t.TempDir()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	src := filledStore(t, 25, 1)
	offsets := map[int32]int64{0: 125, 1: 124, 2: 123, 3: 0}
	m, err := store.Save(ctx, Capture(src, "clickstream.events", "ut-1", offsets))
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 1 || m.Users != 25 {
		t.Fatalf("manifest = generation %d, %d users; want 1, 25", m.Generation, m.Users)
	}
	snap, got, err := store.LoadLatest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Offsets, offsets) || got.ModelVersion != "ut-1" {
		t.Fatalf("manifest offsets %v model %q; want %v ut-1", got.Offsets, got.ModelVersion, offsets)
	}
	dst, err := NewVectorStore(4, 8, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Restore(dst); err != nil {
		t.Fatal(err)
	}
	if want, have := allUsers(src), allUsers(dst); !reflect.DeepEqual(want, have) {
		t.Fatalf("restored state differs:\nwant %+v\nhave %+v", want[:2], have[:2])
	}
}

func TestCorruptNewestGenerationFallsBackToPrevious(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, genDir string)
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "partition-0001.arrow")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0xff
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "partition-0000.arrow")
			if err := os.Truncate(p, 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing manifest", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, manifestName)); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage manifest", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, manifestName), []byte("{not json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := NewCheckpointStore(CheckpointConfig{Dir: t.TempDir()}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Save(ctx, Capture(filledStore(t, 10, 1), "t", "v1", map[int32]int64{0: 10})); err != nil {
				t.Fatal(err)
			}
			m2, err := store.Save(ctx, Capture(filledStore(t, 12, 2), "t", "v2", map[int32]int64{0: 20}))
			if err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, store.genDir(m2.Generation))
			if _, _, err := store.Load(m2.Generation); err == nil {
				t.Fatal("corrupted generation loaded without error")
			}
			snap, m, err := store.LoadLatest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Generation != 1 || snap.ModelVersion != "v1" || len(snap.Users) != 10 {
				t.Fatalf("fell back to generation %d (%s, %d users), want generation 1 (v1, 10 users)", m.Generation, snap.ModelVersion, len(snap.Users))
			}
		})
	}
}

func TestOnlyKeepGenerationsRemain(t *testing.T) {
	ctx := context.Background()
	store, err := NewCheckpointStore(CheckpointConfig{Dir: t.TempDir(), Keep: 2}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := store.Save(ctx, Capture(filledStore(t, 3, float32(i)), "t", "v", map[int32]int64{0: int64(i)})); err != nil {
			t.Fatal(err)
		}
	}
	gens, err := store.Generations()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gens, []uint64{5, 4}) {
		t.Fatalf("generations = %v, want [5 4]", gens)
	}
}

func TestNoCheckpoint(t *testing.T) {
	store, err := NewCheckpointStore(CheckpointConfig{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.LoadLatest(context.Background()); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("LoadLatest on an empty dir = %v, want ErrNoCheckpoint", err)
	}
}

func TestSequenceModelHistoriesRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, err := NewHistoryStore(5, 8, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		if err := src.Put(UserState{UserID: fmt.Sprintf("h%d", i), History: []int32{int32(i + 1), 3, 9}[:1+i%3],
			NewestTsMs: int64(i), Partition: int32(i % 2), Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := NewCheckpointStore(CheckpointConfig{Dir: t.TempDir()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, Capture(src, "t", "seq-1", map[int32]int64{0: 7, 1: 7})); err != nil {
		t.Fatal(err)
	}
	snap, _, err := store.LoadLatest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := NewHistoryStore(5, 8, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Restore(dst); err != nil {
		t.Fatal(err)
	}
	if want, have := allUsers(src), allUsers(dst); !reflect.DeepEqual(want, have) {
		t.Fatalf("restored histories differ:\nwant %+v\nhave %+v", want, have)
	}
	states, err := NewVectorStore(4, 8, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Restore(states); err == nil {
		t.Fatal("a checkpoint of histories restored into a store of states")
	}
}

// TestExtrasRoundTripAndCorruption checks the scorer's extra files: given
// back byte for byte, a corrupted one makes the generation invalid (the
// previous one is loaded), and names that would escape the generation or
// shadow its own files are refused.
func TestExtrasRoundTripAndCorruption(t *testing.T) {
	ctx := context.Background()
	store, err := NewCheckpointStore(CheckpointConfig{Dir: t.TempDir()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	src := filledStore(t, 5, 1)
	for gen, payload := range []string{"first", "second"} {
		snap := Capture(src, "events", "ut-1", map[int32]int64{0: int64(gen)})
		snap.Extras = map[string][]byte{"retrieval-0000.bin": []byte(payload), "retrieval-0001.bin": {}}
		if _, err := store.Save(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	snap, m, err := store.LoadLatest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 2 || string(snap.Extras["retrieval-0000.bin"]) != "second" || len(snap.Extras) != 2 {
		t.Fatalf("generation %d extras %q, want generation 2 with its two files", m.Generation, snap.Extras)
	}
	gens, _ := store.Generations()
	if err := os.WriteFile(filepath.Join(store.genDir(gens[0]), "retrieval-0000.bin"), []byte("secxnd"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, m, err = store.LoadLatest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 1 || string(snap.Extras["retrieval-0000.bin"]) != "first" {
		t.Fatalf("after corrupting generation 2's extra file: loaded generation %d, extras %q; want generation 1", m.Generation, snap.Extras)
	}
	for _, name := range []string{"../escape", "MANIFEST.json", "partition-0000.arrow", ".hidden", ""} {
		snap := Capture(src, "events", "ut-1", nil)
		snap.Extras = map[string][]byte{name: []byte("x")}
		if _, err := store.Save(ctx, snap); err == nil {
			t.Errorf("extra file %q was accepted", name)
		}
	}
}
