package schemas

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// logTime is the log time the tests decode at: 2025-06-01T12:00:00Z.
var logTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const validEvent = `{"event_id":"e-1","user_id":"u-42","item_id":"i-7","type":"purchase",` +
	`"ts":"2025-06-01T11:59:58.123Z","session_id":"s-9","price":19.99,"category":"shoes","extra":{"x":[1,2]}}`

func TestDecodeValid(t *testing.T) {
	d := NewEventDecoder(EventLimits{})
	tests := []struct {
		name  string
		key   string
		value string
		want  Event
	}{
		{
			name:  "every field",
			key:   "u-42",
			value: validEvent,
			want: Event{EventID: []byte("e-1"), UserID: []byte("u-42"), ItemID: []byte("i-7"), Type: 3,
				TsMs: 1748779198123, SessionID: []byte("s-9"), Price: 19.99, HasPrice: true, Category: []byte("shoes")},
		},
		{
			name:  "epoch millis, empty key accepted, nulls and empty strings absent",
			value: `{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":1748779198123,"session_id":null,"query":"","price":null}`,
			want:  Event{EventID: []byte("e"), UserID: []byte("u"), ItemID: []byte("i"), Type: 0, TsMs: 1748779198123},
		},
		{
			name:  "search needs query, not item_id",
			key:   "u",
			value: `{"event_id":"e","user_id":"u","type":"search","query":"red shoes","ts":"2025-06-01T13:59:58+02:00"}`,
			want:  Event{EventID: []byte("e"), UserID: []byte("u"), Type: 4, TsMs: 1748779198000, Query: []byte("red shoes")},
		},
		{
			name:  "escapes are decoded, price zero and -0 is 0",
			value: `{"event_id":"e\u00e9","user_id":"u\"q","item_id":"i\/j","type":"click","ts":"2025-06-01t11:59:58.5z","price":-0}`,
			want: Event{EventID: []byte("eé"), UserID: []byte(`u"q`), ItemID: []byte("i/j"), Type: 1,
				TsMs: 1748779198500, Price: 0, HasPrice: true},
		},
		{
			name:  "ts exactly at the future limit",
			value: `{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":"2025-06-02T12:00:00Z"}`,
			want:  Event{EventID: []byte("e"), UserID: []byte("u"), ItemID: []byte("i"), TsMs: 1748865600000},
		},
		{
			name:  "ids at their limit",
			value: fmt.Sprintf(`{"event_id":"%s","user_id":"u","item_id":"i","type":"view","ts":946684800000}`, strings.Repeat("e", 128)),
			want:  Event{EventID: bytes.Repeat([]byte("e"), 128), UserID: []byte("u"), ItemID: []byte("i"), TsMs: 946684800000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			if err := d.Decode([]byte(tt.key), []byte(tt.value), logTime, &ev); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got, want := fmt.Sprintf("%+v", eventStrings(ev)), fmt.Sprintf("%+v", eventStrings(tt.want)); got != want {
				t.Errorf("event\n got %s\nwant %s", got, want)
			}
		})
	}
}

// eventStrings renders an event with its byte fields as strings (nil kept
// apart from empty) for comparison.
func eventStrings(ev Event) []string {
	s := func(b []byte) string {
		if b == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", b)
	}
	return []string{s(ev.EventID), s(ev.UserID), s(ev.ItemID), fmt.Sprint(ev.Type), fmt.Sprint(ev.TsMs),
		s(ev.SessionID), s(ev.Query), fmt.Sprint(ev.Price), fmt.Sprint(ev.HasPrice), s(ev.Category)}
}

func TestDecodeRejects(t *testing.T) {
	d := NewEventDecoder(EventLimits{})
	base := map[string]string{
		"event_id": `"e"`, "user_id": `"u"`, "item_id": `"i"`, "type": `"view"`, "ts": `1748779198123`,
	}
	// ev builds an event from base with fields replaced (a "" value deletes).
	ev := func(kv ...string) string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		var parts []string
		for _, k := range []string{"event_id", "user_id", "item_id", "type", "ts", "session_id", "query", "price", "category"} {
			if v, ok := m[k]; ok {
				parts = append(parts, fmt.Sprintf("%q:%s", k, v))
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	long := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }

	tests := []struct {
		name       string
		key        string
		value      string
		reason     string
		detailHas  string
		logTimeArg time.Time
	}{
		{"oversize message", "", `{"pad":"` + strings.Repeat("x", 16384) + `"}`, ReasonOversize, "max_message_bytes", logTime},
		{"empty value", "", ``, ReasonMalformedJSON, "", logTime},
		{"not json", "", `{"event_id":`, ReasonMalformedJSON, "", logTime},
		{"trailing garbage", "", ev() + "x", ReasonMalformedJSON, "", logTime},
		{"array", "", `[1,2]`, ReasonMalformedJSON, "not an object", logTime},
		{"string", "", `"hello"`, ReasonMalformedJSON, "not an object", logTime},
		{"missing event_id", "", ev("event_id", ""), ReasonMissingField, "event_id", logTime},
		{"empty user_id", "", ev("user_id", `""`), ReasonMissingField, "user_id", logTime},
		{"null user_id", "", ev("user_id", `null`), ReasonMissingField, "user_id", logTime},
		{"missing type", "", ev("type", ""), ReasonMissingField, "type", logTime},
		{"missing ts", "", ev("ts", ""), ReasonMissingField, "ts", logTime},
		{"missing item_id", "", ev("item_id", ""), ReasonMissingField, "item_id", logTime},
		{"search without query", "", ev("type", `"search"`, "item_id", ""), ReasonMissingField, "query", logTime},
		{"user_id number", "", ev("user_id", `42`), ReasonInvalidField, "user_id", logTime},
		{"item_id object", "", ev("item_id", `{}`), ReasonInvalidField, "item_id", logTime},
		{"type bool", "", ev("type", `true`), ReasonInvalidField, "type", logTime},
		{"ts bool", "", ev("ts", `false`), ReasonInvalidField, "ts", logTime},
		{"ts array", "", ev("ts", `[1]`), ReasonInvalidField, "ts", logTime},
		{"price string", "", ev("price", `"9.99"`), ReasonInvalidField, "price", logTime},
		{"price negative", "", ev("price", `-1`), ReasonInvalidField, "price", logTime},
		{"price NaN", "", ev("price", `NaN`), ReasonInvalidField, "price", logTime},
		{"price inf", "", ev("price", `inf`), ReasonInvalidField, "price", logTime},
		{"price overflow", "", ev("price", `1e400`), ReasonInvalidField, "price", logTime},
		{"session_id number", "", ev("session_id", `1`), ReasonInvalidField, "session_id", logTime},
		{"query array", "", ev("query", `["a"]`), ReasonInvalidField, "query", logTime},
		{"category number", "", ev("category", `7`), ReasonInvalidField, "category", logTime},
		{"invalid utf-8", "", ev("item_id", "\"a\xffb\""), ReasonInvalidField, "UTF-8", logTime},
		{"duplicate field", "", `{"user_id":"u",` + ev()[1:], ReasonInvalidField, "user_id: duplicate", logTime},
		{"unknown type", "", ev("type", `"like"`), ReasonUnknownType, `"like"`, logTime},
		{"oversize event_id", "", ev("event_id", long(129)), ReasonOversize, "event_id", logTime},
		{"oversize user_id", "", ev("user_id", long(129)), ReasonOversize, "user_id", logTime},
		{"oversize item_id", "", ev("item_id", long(129)), ReasonOversize, "item_id", logTime},
		{"oversize session_id", "", ev("session_id", long(129)), ReasonOversize, "session_id", logTime},
		{"oversize category", "", ev("category", long(513)), ReasonOversize, "category", logTime},
		{"oversize query", "", ev("query", long(1025)), ReasonOversize, "query", logTime},
		{"key mismatch", "other", ev(), ReasonKeyMismatch, "other", logTime},
		{"ts before 2000", "", ev("ts", `946684799999`), ReasonBadTimestamp, "2000", logTime},
		{"ts negative", "", ev("ts", `-5`), ReasonBadTimestamp, "2000", logTime},
		{"ts fractional millis", "", ev("ts", `1748779198123.5`), ReasonBadTimestamp, "integer", logTime},
		{"ts exponent", "", ev("ts", `1.7e12`), ReasonBadTimestamp, "integer", logTime},
		{"ts too far in the future", "", ev("ts", `"2025-06-02T12:00:00.001Z"`), ReasonBadTimestamp, "max_future_skew", logTime},
		{"ts not rfc3339", "", ev("ts", `"2025-06-01 11:59:58"`), ReasonBadTimestamp, "RFC 3339", logTime},
		{"ts no zone", "", ev("ts", `"2025-06-01T11:59:58"`), ReasonBadTimestamp, "RFC 3339", logTime},
		{"ts bad date", "", ev("ts", `"2025-02-29T11:59:58Z"`), ReasonBadTimestamp, "RFC 3339", logTime},
		{"ts digits as string", "", ev("ts", `"1748779198123"`), ReasonBadTimestamp, "RFC 3339", logTime},
		// A zero log time skips the future check, not the others.
		{"zero log time, old ts", "", ev("ts", `0`), ReasonBadTimestamp, "2000", time.Time{}},
	}
	seenReasons := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Event
			err := d.Decode([]byte(tt.key), []byte(tt.value), tt.logTimeArg, &e)
			if err == nil {
				t.Fatalf("Decode(%s) accepted, want %s", clip(tt.value, 200), tt.reason)
			}
			if err.Reason != tt.reason || !strings.Contains(err.Detail, tt.detailHas) {
				t.Errorf("Decode(%s) = %v, want reason %s with detail containing %q", clip(tt.value, 200), err, tt.reason, tt.detailHas)
			}
			seenReasons[err.Reason] = true
		})
	}
	for _, r := range allReasons {
		if !seenReasons[r] {
			t.Errorf("no test case rejects with %s", r)
		}
	}
}

var allReasons = []string{ReasonMalformedJSON, ReasonMissingField, ReasonInvalidField, ReasonUnknownType,
	ReasonOversize, ReasonKeyMismatch, ReasonBadTimestamp}

func TestDecodeFutureSkewZeroLogTime(t *testing.T) {
	d := NewEventDecoder(EventLimits{})
	var ev Event
	v := []byte(`{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":"9999-12-31T23:59:59Z"}`)
	if err := d.Decode(nil, v, time.Time{}, &ev); err != nil {
		t.Fatalf("zero log time must skip the future check: %v", err)
	}
	if err := d.Decode(nil, v, logTime, &ev); err == nil || err.Reason != ReasonBadTimestamp {
		t.Fatalf("far-future ts at a real log time = %v, want bad_timestamp", err)
	}
}

func TestDecodeCustomLimits(t *testing.T) {
	d := NewEventDecoder(EventLimits{MaxMessageBytes: 200, MaxIDBytes: 4, Types: []string{"view", "rate"}, MaxFutureSkew: time.Second})
	tests := []struct {
		value  string
		reason string // "" means valid
	}{
		{`{"event_id":"e","user_id":"u","item_id":"i","type":"rate","ts":1748779200000}`, ""},
		{`{"event_id":"e","user_id":"u","item_id":"i","type":"rate","ts":1748779201001}`, ReasonBadTimestamp},
		{`{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":1748779200000}`, ReasonUnknownType},
		{`{"event_id":"e","user_id":"u","item_id":"12345","type":"view","ts":1748779200000}`, ReasonOversize},
		// "search" is not configured, so it is an unknown type, and a
		// configured type always needs item_id.
		{`{"event_id":"e","user_id":"u","query":"q","type":"search","ts":1748779200000}`, ReasonUnknownType},
		{`{"event_id":"e","user_id":"u","query":"q","type":"view","ts":1748779200000}`, ReasonMissingField},
		{`{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":1748779200000,"pad":"` + strings.Repeat("x", 150) + `"}`, ReasonOversize},
	}
	for _, tt := range tests {
		var ev Event
		err := d.Decode(nil, []byte(tt.value), logTime, &ev)
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("Decode(%s) = %v, want valid", tt.value, err)
		case tt.reason != "" && (err == nil || err.Reason != tt.reason):
			t.Errorf("Decode(%s) = %v, want %s", tt.value, err, tt.reason)
		}
	}
}

func TestEventLimitsValidate(t *testing.T) {
	tests := []struct {
		limits EventLimits
		want   string // "" means valid
	}{
		{EventLimits{}, ""},
		{EventLimits{}.WithDefaults(), ""},
		{EventLimits{MaxMessageBytes: -1}, "max_message_bytes: must be >= 0"},
		{EventLimits{MaxIDBytes: -1}, "max_id_bytes"},
		{EventLimits{MaxFieldBytes: -1}, "max_field_bytes"},
		{EventLimits{MaxQueryBytes: -2}, "max_query_bytes"},
		{EventLimits{MaxFutureSkew: -time.Second}, "max_future_skew"},
		{EventLimits{Types: []string{}}, "types: must name at least one"},
		{EventLimits{Types: []string{"view", ""}}, "types[1]: must not be empty"},
		{EventLimits{Types: []string{"view", "click", "view"}}, `types[2]: "view" duplicates types[0]`},
		{EventLimits{Types: manyTypes(256)}, "types: at most 255"},
		{EventLimits{Types: manyTypes(255)}, ""},
	}
	for _, tt := range tests {
		err := tt.limits.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tt.limits, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%+v) = %v, want error containing %q", tt.limits, err, tt.want)
		}
	}
	d := EventLimits{}.WithDefaults()
	if d.MaxMessageBytes != 16384 || d.MaxIDBytes != 128 || d.MaxFieldBytes != 512 || d.MaxQueryBytes != 1024 ||
		d.MaxFutureSkew != 24*time.Hour || strings.Join(d.Types, ",") != "view,click,add_to_cart,purchase,search" {
		t.Errorf("defaults = %+v", d)
	}
}

func manyTypes(n int) []string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = fmt.Sprintf("t%d", i)
	}
	return ts
}

func TestNewEventDecoderPanicsOnInvalidLimits(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewEventDecoder accepted invalid limits")
		}
	}()
	NewEventDecoder(EventLimits{MaxIDBytes: -1})
}

func TestParseRFC3339MillisAgreesWithTime(t *testing.T) {
	inputs := []string{
		"2025-06-01T11:59:58Z", "2025-06-01T11:59:58.1Z", "2025-06-01T11:59:58.12Z", "2025-06-01T11:59:58.123Z",
		"2025-06-01T11:59:58.123456789Z", "2025-06-01T11:59:58.999999+05:30", "2025-06-01T00:00:00-23:59",
		"2000-02-29T23:59:59Z", "1999-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z", "0000-02-29T12:00:00Z",
		"9999-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "2100-03-01T00:00:00+01:00",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		tm := time.UnixMilli(r.Int64N(400*365*86400*1000) - 100*365*86400*1000).UTC()
		zone := time.FixedZone("", (r.IntN(47)-23)*1800)
		inputs = append(inputs, tm.In(zone).Format(time.RFC3339Nano))
	}
	for _, in := range inputs {
		want, err := time.Parse(time.RFC3339Nano, in)
		if err != nil {
			t.Fatalf("time.Parse(%q): %v", in, err)
		}
		got, ok := ParseRFC3339Millis([]byte(in))
		if !ok || got != floorMillis(want) {
			t.Errorf("ParseRFC3339Millis(%q) = %d, %v; want %d", in, got, ok, floorMillis(want))
		}
	}
	for _, bad := range []string{
		"", "2025-06-01", "2025-06-01T11:59:58", "2025-06-01T11:59:58.Z", "2025-06-01T11:59:60Z",
		"2025-13-01T11:59:58Z", "2025-00-01T11:59:58Z", "2025-04-31T11:59:58Z", "2023-02-29T11:59:58Z",
		"2025-06-01T24:00:00Z", "2025-06-01T11:60:00Z", "2025-06-01 11:59:58Z", "2025-06-01T11:59:58+0530",
		"2025-06-01T11:59:58+24:00", "2025-06-01T11:59:58+05:60", "2025-06-01T11:59:58ZZ", "+025-06-01T11:59:58Z",
		"2025/06/01T11:59:58Z", "2025-06-01T11:59:58.12a3Z", "2025-06-01T11:59:58Z ",
	} {
		if got, ok := ParseRFC3339Millis([]byte(bad)); ok {
			t.Errorf("ParseRFC3339Millis(%q) = %d, want rejection", bad, got)
		}
	}
}

// floorMillis is t in Unix milliseconds rounded down (toward -inf), which is
// what truncating the fraction of a date-time gives.
func floorMillis(t time.Time) int64 {
	ms := t.UnixMilli() // truncates toward zero
	if t.Before(time.UnixMilli(ms)) {
		ms--
	}
	return ms
}

func TestDecodeValidDoesNotAllocate(t *testing.T) {
	d := NewEventDecoder(EventLimits{})
	key, value := []byte("u-42"), []byte(validEvent)
	var ev Event
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Decode(key, value, logTime, &ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode of a valid event: %v allocs/op, want 0", allocs)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	d := NewEventDecoder(EventLimits{})
	key, value := []byte("u-42"), []byte(validEvent)
	var ev Event
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if err := d.Decode(key, value, logTime, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEventsDocExamples runs every example of EVENTS.md through the decoder:
// the producer contract cannot drift from the code.
func TestEventsDocExamples(t *testing.T) {
	doc, err := os.ReadFile("EVENTS.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- expect: (\\S+)(?: key=(\\S+))? -->\n```json\n(.*?)\n```")
	examples := re.FindAllSubmatch(doc, -1)
	if len(examples) < 10 {
		t.Fatalf("found %d examples in EVENTS.md", len(examples))
	}
	if n := bytes.Count(doc, []byte("<!-- expect:")); n != len(examples) {
		t.Fatalf("%d expect markers but %d parsed examples: a marker is not followed by a json block", n, len(examples))
	}
	d := NewEventDecoder(EventLimits{})
	covered := map[string]bool{}
	for _, ex := range examples {
		want, key, value := string(ex[1]), ex[2], ex[3]
		var ev Event
		derr := d.Decode(key, value, logTime, &ev)
		got := "valid"
		if derr != nil {
			got = derr.Reason
		}
		if got != want {
			t.Errorf("EVENTS.md example (key %q) %s\nexpects %s, decoder says %v", key, value, want, derr)
		}
		covered[got] = true
	}
	for _, r := range append(allReasons, "valid") {
		if !covered[r] {
			t.Errorf("EVENTS.md has no example for %s", r)
		}
	}
	for _, h := range []string{"recstream.reason", "recstream.detail", "recstream.source.topic", "recstream.source.partition",
		"recstream.source.offset", "recstream.source.timestamp", EventSchemaVersion} {
		if !bytes.Contains(doc, []byte("`"+h+"`")) {
			t.Errorf("EVENTS.md does not mention %s", h)
		}
	}
}
