package drills

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/schemas"
)

// poisonBurstScenario writes a burst of malformed and hostile records into
// the middle of the stream. Every one must be dead-lettered with the reason
// the event contract (schemas/EVENTS.md) gives it, and nothing else may
// change: the final recommendations equal the reference run's, which never
// saw the burst (the burst shifts the offsets of the records after it, so
// the comparison maps each record's version and offset back to the
// reference's, see outcome.go).
type poisonBurstScenario struct{}

func (poisonBurstScenario) name() string { return ScenarioPoisonBurst }

func (poisonBurstScenario) describe(Config) string {
	return "a burst of malformed and hostile records (oversize, nesting bomb, binary, duplicate and mistyped fields, " +
		"forged keys, far-future times) mid-stream: all dead-lettered with their reason, nothing else affected"
}

func (poisonBurstScenario) expected(Config) time.Duration { return 15 * time.Second }

func (poisonBurstScenario) poison(cfg Config) int { return cfg.PoisonRecords }

func (poisonBurstScenario) prepare(context.Context, *drillRun) error { return nil }

// inject waits until the burst is in the log: the fault spans its
// production.
func (poisonBurstScenario) inject(ctx context.Context, d *drillRun) error {
	first, last := -1, -1
	for i, r := range d.records {
		if r.base < 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if err := d.stream.WaitProduced(ctx, first); err != nil {
		return err
	}
	start := time.Now()
	if err := d.stream.WaitProduced(ctx, last+1); err != nil {
		return err
	}
	d.fault("poison burst", fmt.Sprintf("%d hostile records", last-first+1), start, time.Now())
	return d.waitRecovered(ctx, start)
}

func (poisonBurstScenario) check(context.Context, *drillRun, *outcome, *ScenarioResult) error {
	return nil
}

// poisonKind is one kind of hostile record and the dead-letter reason the
// event contract gives it.
type poisonKind struct {
	name   string
	reason string
	// build returns the key and value of a record aimed at user (a real
	// user of the stream, so that the record lands in that user's
	// partition), with the log time at; victim is another real user.
	build func(rng *rand.Rand, user, victim string, at time.Time) (key, value []byte)
}

func validEvent(user, typ string, ts string, extra string) string {
	return `{"event_id":"poison-` + user + `-` + typ + `","user_id":"` + user + `","item_id":"c00-i00000","type":"` + typ + `","ts":` + ts + extra + `}`
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// poisonKinds are the hostile records of a burst, each with the reason the
// decoder must give it (checked by TestPoisonKindsAreRejectedAsTheContractSays).
var poisonKinds = []poisonKind{
	{"truncated JSON", schemas.ReasonMalformedJSON, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		v := validEvent(u, "view", ms(at), "")
		return []byte(u), []byte(v[:len(v)/2])
	}},
	{"JSON array", schemas.ReasonMalformedJSON, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte("[" + validEvent(u, "view", ms(at), "") + "]")
	}},
	{"binary garbage", schemas.ReasonMalformedJSON, func(rng *rand.Rand, u, _ string, _ time.Time) ([]byte, []byte) {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0], b[1] = 0xff, 0x00 // never the start of a JSON value
		return []byte(u), b
	}},
	{"nesting bomb", schemas.ReasonMalformedJSON, func(_ *rand.Rand, u, _ string, _ time.Time) ([]byte, []byte) {
		return []byte(u), []byte(`{"user_id":` + strings.Repeat("[", 8000) + strings.Repeat("]", 8000) + `}`)
	}},
	{"oversize message", schemas.ReasonOversize, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(validEvent(u, "view", ms(at), `,"padding":"`+strings.Repeat("A", 200<<10)+`"`))
	}},
	{"oversize user_id", schemas.ReasonOversize, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		long := u + strings.Repeat("x", 200)
		return []byte(u), []byte(validEvent(long, "view", ms(at), ""))
	}},
	{"user_id of the wrong type", schemas.ReasonInvalidField, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(`{"event_id":"p","user_id":12345,"item_id":"c00-i00000","type":"view","ts":` + ms(at) + `}`)
	}},
	{"duplicate user_id naming another user", schemas.ReasonInvalidField, func(_ *rand.Rand, u, victim string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(`{"event_id":"p","user_id":"` + u + `","user_id":"` + victim + `","item_id":"c00-i00000","type":"purchase","ts":` + ms(at) + `}`)
	}},
	{"negative price", schemas.ReasonInvalidField, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(validEvent(u, "purchase", ms(at), `,"price":-1e308`))
	}},
	{"invalid UTF-8", schemas.ReasonInvalidField, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(`{"event_id":"p","user_id":"` + u + `","item_id":"c00-` + "\xff\xfe" + `","type":"view","ts":` + ms(at) + `}`)
	}},
	{"empty object", schemas.ReasonMissingField, func(_ *rand.Rand, u, _ string, _ time.Time) ([]byte, []byte) {
		return []byte(u), []byte(`{}`)
	}},
	{"null user_id", schemas.ReasonMissingField, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(`{"event_id":"p","user_id":null,"item_id":"c00-i00000","type":"view","ts":` + ms(at) + `}`)
	}},
	{"SQL in type", schemas.ReasonUnknownType, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(validEvent(u, `view'); DROP TABLE events; --`, ms(at), ""))
	}},
	{"far-future time", schemas.ReasonBadTimestamp, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(validEvent(u, "purchase", ms(at.Add(72*time.Hour)), ""))
	}},
	{"epoch seconds", schemas.ReasonBadTimestamp, func(_ *rand.Rand, u, _ string, at time.Time) ([]byte, []byte) {
		return []byte(u), []byte(validEvent(u, "view", strconv.FormatInt(at.Unix(), 10), ""))
	}},
	{"forged key (another user's partition)", schemas.ReasonKeyMismatch, func(_ *rand.Rand, u, victim string, at time.Time) ([]byte, []byte) {
		return []byte(victim), []byte(validEvent(u, "purchase", ms(at), ""))
	}},
}

// poisonBurst returns n hostile records, the kinds in turn, aimed at users
// of a world of users users, all with log time at. The same seed gives the
// same burst.
func poisonBurst(seed uint64, n, users int, at time.Time) []inputRecord {
	rng := rand.New(rand.NewPCG(seed, 0xbad))
	out := make([]inputRecord, n)
	for i := range out {
		k := poisonKinds[i%len(poisonKinds)]
		u := rng.IntN(users)
		v := (u + 1 + rng.IntN(users-1)) % users // never u itself
		key, value := k.build(rng, generator.UserID(u), generator.UserID(v), at)
		out[i] = inputRecord{key: key, value: value, at: at, kind: k.reason, base: -1}
	}
	return out
}
