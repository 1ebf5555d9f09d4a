package drills

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func startKfake(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// TestStreamGivesTheSameLogTwice produces the same input to two topics,
// one of them paced and with a poison burst: every base record must land
// in the same partition, in the same order, and offsetMap must pair them.
func TestStreamGivesTheSameLogTwice(t *testing.T) {
	addrs := startKfake(t, "a", "b", "b2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	plain := buildInput(9, 3000, 0)
	ref, err := startStream(ctx, addrs, "a", plain, len(plain), 0)
	if err != nil {
		t.Fatal(err)
	}
	refPos, err := ref.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}

	poisoned := buildInput(9, 3000, len(poisonKinds))
	began := time.Now()
	// A span long enough that a loaded machine still finds it unfinished.
	const span = 6 * time.Second
	s, err := startStream(ctx, addrs, "b", poisoned, 300, span)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitProduced(ctx, 300); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := s.Produced(); n >= len(poisoned) || n < 300 {
		t.Fatalf("after 0.5 s of a %s span, %d of %d records produced: the stream is not paced", span, n, len(poisoned))
	}
	pos, err := s.Wait(ctx) // finishes at once
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > span-time.Second {
		t.Errorf("Wait took %s: Finish did not produce the rest at once", took)
	}

	m, err := newOffsetMap(poisoned, pos, refPos)
	if err != nil {
		t.Fatal(err)
	}
	if m.identity {
		t.Fatal("a poisoned input mapped as identical to the plain one")
	}
	shifted := 0
	for i, r := range poisoned {
		if r.base < 0 {
			continue
		}
		got := m.byPartition[pos[i].Partition][pos[i].Offset]
		if got != refPos[r.base].Offset {
			t.Fatalf("record %d maps to offset %d, the reference has it at %d", r.base, got, refPos[r.base].Offset)
		}
		if pos[i].Offset != got {
			shifted++
		}
	}
	if shifted == 0 {
		t.Error("no record after the burst was shifted: the burst did not land in the stream")
	}

	// The plain input produced twice maps as the identity.
	again, err := startStream(ctx, addrs, "b2", plain, 100, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	againPos, err := again.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m2, err := newOffsetMap(plain, againPos, refPos); err != nil || !m2.identity {
		t.Fatalf("the same input produced twice: identity %v, err %v", m2.identity, err)
	}
	// Positions follow the keys: one user, one partition.
	byUser := map[string]int32{}
	for i, r := range plain {
		if p, ok := byUser[string(r.key)]; ok && p != refPos[i].Partition {
			t.Fatalf("user %s in partitions %d and %d", r.key, p, refPos[i].Partition)
		}
		byUser[string(r.key)] = refPos[i].Partition
	}
}
