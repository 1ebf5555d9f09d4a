package schemas

import (
	"bytes"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeEvent checks that Decode never panics and that whatever it
// accepts honours the contract: required fields present and within limits,
// a known type, a ts in range, the key equal to user_id when set, and a
// rejection always carries a known reason. Run it with
// go test -fuzz=FuzzDecodeEvent -fuzztime=60s ./schemas/
func FuzzDecodeEvent(f *testing.F) {
	seeds := []struct{ key, value string }{
		{"u-42", validEvent},
		{"", `{"event_id":"e","user_id":"u","type":"search","query":"q","ts":1748779198123}`},
		{"u", `{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":"2025-06-01T13:59:58.5+02:00"}`},
		{"x", `{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":1}`},
		{"", `{"event_id":"e\u00e9\ud83d\ude00","user_id":"u\\","item_id":"i","type":"click","ts":1748779198123,"price":1e308}`},
		{"", `{"user_id":"u","user_id":"v"}`},
		{"", `[{"a":null},true,false,-0.0e-1,"\uZZZZ"]`},
		{"", `{"event_id":"e","user_id":"u","item_id":"i","type":"view","ts":"9999-12-31T23:59:59.999999999Z","price":NaN}`},
		{"", `{"ts":99999999999999999999999}`},
		{"", "{\"event_id\":\"\xff\"}"},
		{"", ``},
	}
	for _, s := range seeds {
		f.Add([]byte(s.key), []byte(s.value))
	}
	d := NewEventDecoder(EventLimits{})
	limits := d.Limits()
	f.Fuzz(func(t *testing.T, key, value []byte) {
		var ev Event
		err := d.Decode(key, value, logTime, &ev)
		if err != nil {
			if !slices.Contains(allReasons, err.Reason) || err.Detail == "" {
				t.Fatalf("rejection with unknown reason or no detail: %#v", err)
			}
			return
		}
		if len(value) > limits.MaxMessageBytes {
			t.Fatalf("accepted a %d-byte message", len(value))
		}
		for _, f := range []struct {
			name     string
			v        []byte
			limit    int
			required bool
		}{
			{"event_id", ev.EventID, limits.MaxIDBytes, true},
			{"user_id", ev.UserID, limits.MaxIDBytes, true},
			{"item_id", ev.ItemID, limits.MaxIDBytes, limits.Types[ev.Type] != SearchEventType},
			{"session_id", ev.SessionID, limits.MaxIDBytes, false},
			{"query", ev.Query, limits.MaxQueryBytes, limits.Types[ev.Type] == SearchEventType},
			{"category", ev.Category, limits.MaxFieldBytes, false},
		} {
			if f.required && len(f.v) == 0 {
				t.Fatalf("accepted an event without %s", f.name)
			}
			if f.v != nil && len(f.v) == 0 {
				t.Fatalf("%s is empty but not nil", f.name)
			}
			if len(f.v) > f.limit || !utf8.Valid(f.v) {
				t.Fatalf("accepted %s %q", f.name, f.v)
			}
		}
		if int(ev.Type) >= len(limits.Types) {
			t.Fatalf("type code %d out of range", ev.Type)
		}
		if ev.TsMs < limits.WithDefaults().MinTs.UnixMilli() || ev.TsMs > logTime.UnixMilli()+limits.MaxFutureSkew.Milliseconds() {
			t.Fatalf("accepted ts %d", ev.TsMs)
		}
		if ev.HasPrice && !(ev.Price >= 0) {
			t.Fatalf("accepted price %v", ev.Price)
		}
		if len(key) > 0 && !bytes.Equal(key, ev.UserID) {
			t.Fatalf("accepted key %q for user_id %q", key, ev.UserID)
		}
	})
}
