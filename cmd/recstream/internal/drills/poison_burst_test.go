package drills

import (
	"bytes"
	"testing"
	"time"

	"github.com/recstream/recstream/schemas"
)

// TestPoisonKindsAreRejectedAsTheContractSays runs every hostile record
// through the pipeline's own decoder: each must be rejected with the reason
// the drill expects in the dead-letter topic.
func TestPoisonKindsAreRejectedAsTheContractSays(t *testing.T) {
	dec := schemas.NewEventDecoder(schemas.EventLimits{}.WithDefaults())
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	burst := poisonBurst(7, len(poisonKinds)*3, 500, at)
	for i, r := range burst {
		k := poisonKinds[i%len(poisonKinds)]
		var ev schemas.Event
		derr := dec.Decode(r.key, r.value, r.at, &ev)
		switch {
		case derr == nil:
			t.Errorf("%s: accepted as a valid event of user %q", k.name, ev.UserID)
		case derr.Reason != k.reason || r.kind != k.reason:
			t.Errorf("%s: rejected as %s (%s), want %s", k.name, derr.Reason, derr.Detail, k.reason)
		}
		if len(r.key) == 0 {
			t.Errorf("%s: no key; an unkeyed record would land in an unpredictable partition", k.name)
		}
		if r.base != -1 {
			t.Errorf("%s: base = %d, want -1 for a poison record", k.name, r.base)
		}
		if len(r.value) > 1<<20-1024 {
			t.Errorf("%s: %d bytes, too large for one produce request", k.name, len(r.value))
		}
	}
}

func TestPoisonBurstIsDeterministic(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := poisonBurst(3, 50, 500, at), poisonBurst(3, 50, 500, at)
	c := poisonBurst(4, 50, 500, at)
	same := true
	for i := range a {
		if !bytes.Equal(a[i].key, b[i].key) || !bytes.Equal(a[i].value, b[i].value) {
			t.Fatalf("record %d differs between two bursts of the same seed", i)
		}
		same = same && bytes.Equal(a[i].key, c[i].key)
	}
	if same {
		t.Fatal("bursts of seeds 3 and 4 aim at the same users")
	}
}

func TestBuildInput(t *testing.T) {
	plain := buildInput(5, 2000, 0)
	again := buildInput(5, 2000, 0)
	poisoned := buildInput(5, 2000, 40)
	if len(plain) != 2000 || len(poisoned) != 2040 {
		t.Fatalf("lengths %d and %d, want 2000 and 2040", len(plain), len(poisoned))
	}
	for i := range plain {
		if plain[i].base != i || !bytes.Equal(plain[i].value, again[i].value) || !plain[i].at.Equal(again[i].at) {
			t.Fatalf("record %d: base %d, or not the same as in a second build of the same seed", i, plain[i].base)
		}
	}
	// The burst sits in the middle; the base records around it are the
	// plain input's, in order.
	var bases []int
	firstPoison := -1
	for i, r := range poisoned {
		if r.base < 0 {
			if firstPoison < 0 {
				firstPoison = i
			}
			continue
		}
		bases = append(bases, r.base)
		if !bytes.Equal(r.value, plain[r.base].value) {
			t.Fatalf("base record %d differs from the plain input's", r.base)
		}
	}
	if firstPoison != 1000 {
		t.Errorf("burst starts at %d, want 1000", firstPoison)
	}
	for i, b := range bases {
		if b != i {
			t.Fatalf("base records out of order at %d: %d", i, b)
		}
	}
	var invalid int
	for _, r := range plain {
		if r.kind != "" {
			invalid++
		}
	}
	if invalid == 0 {
		t.Error("the plain input has no malformed record: the dead-letter path would go untested")
	}
}
