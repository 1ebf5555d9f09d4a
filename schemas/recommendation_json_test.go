package schemas

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

func sampleRecommendation() Recommendation {
	return Recommendation{
		UserID:       "u42",
		Items:        []string{"i1", "i7", "i3"},
		Scores:       []float32{0.75, 0.1, -1.5e-7},
		ModelVersion: "builtin-v3",
		Version:      1234567,
		EventTsMs:    1795838901123, // 2026-11-28T04:08:21.123Z
		ProducedAtMs: 1795838901200,
		Partition:    5,
		Offset:       1234567,
	}
}

func TestAppendRecommendationJSONGolden(t *testing.T) {
	r := sampleRecommendation()
	got := string(AppendRecommendationJSON(nil, &r))
	want := `{"user_id":"u42","items":["i1","i7","i3"],"scores":[0.75,0.1,-1.5e-07],` +
		`"model_version":"builtin-v3","version":1234567,"event_ts":"2026-11-28T04:08:21.123Z",` +
		`"event_ts_ms":1795838901123,"produced_at":"2026-11-28T04:08:21.200Z","partition":5,"offset":1234567}`
	if got != want {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Fatal("not valid JSON")
	}
}

func TestAppendRecommendationJSONCases(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Recommendation)
		want   string // a substring of the encoding
	}{
		{"empty items", func(r *Recommendation) { r.Items, r.Scores = nil, nil }, `"items":[],"scores":[]`},
		{"NaN and Inf scores are null", func(r *Recommendation) {
			r.Items = []string{"a", "b", "c"}
			r.Scores = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
		}, `"scores":[null,null,null]`},
		{"float32 shortest form", func(r *Recommendation) {
			r.Items = []string{"a", "b", "c"}
			r.Scores = []float32{1.0 / 3, 16777216, math.MaxFloat32}
		}, `"scores":[0.33333334,1.6777216e+07,3.4028235e+38]`},
		{"epoch zero", func(r *Recommendation) { r.EventTsMs = 0 }, `"event_ts":"1970-01-01T00:00:00.000Z","event_ts_ms":0`},
		{"before epoch", func(r *Recommendation) { r.EventTsMs = -1 }, `"event_ts":"1969-12-31T23:59:59.999Z","event_ts_ms":-1`},
		{"max version", func(r *Recommendation) { r.Version = math.MaxUint64 }, `"version":18446744073709551615`},
		{"negative partition", func(r *Recommendation) { r.Partition = -1 }, `"partition":-1`},
		{"escapes", func(r *Recommendation) { r.UserID = "a\"b\\c\n\t\x01/<&>é" }, `"user_id":"a\"b\\c\n\t\u0001/<&>é"`},
		{"invalid UTF-8", func(r *Recommendation) { r.UserID = "a\xffb" }, `"user_id":"a\ufffdb"`},
		{"line separators", func(r *Recommendation) { r.UserID = "a\u2028b\u2029" }, `"user_id":"a\u2028b\u2029"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRecommendation()
			tt.modify(&r)
			got := AppendRecommendationJSON(nil, &r)
			if !bytes.Contains(got, []byte(tt.want)) {
				t.Errorf("encoding %s\ndoes not contain %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

// The string escaping must match encoding/json's (HTML escaping off), the
// behaviour the format documents.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f",
		"\x7f", "<", ">", "&", "é", "€", "😀", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80"}
	for n := 0; n < 5000; n++ {
		var sb strings.Builder
		for k := rng.IntN(12); k > 0; k-- {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := sb.String()
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := appendJSONString(nil, s)
		if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json = %s", s, got, want.Bytes())
		}
	}
}

func randomRecommendations(rng *rand.Rand, n int) []Recommendation {
	recs := make([]Recommendation, n)
	for i := range recs {
		k := rng.IntN(25)
		r := Recommendation{
			UserID:       "user-" + strings.Repeat("x", rng.IntN(3)) + string(rune('a'+rng.IntN(26))),
			Items:        make([]string, k),
			Scores:       make([]float32, k),
			ModelVersion: "m" + string(rune('0'+rng.IntN(10))),
			Version:      rng.Uint64(),
			EventTsMs:    rng.Int64N(4102444800000), // up to 2100
			ProducedAtMs: rng.Int64N(4102444800000),
			Partition:    rng.Int32N(64),
			Offset:       rng.Int64(),
		}
		if i%7 == 0 {
			r.UserID = "ü\"\\\n\x01\u2028"
		}
		for j := range k {
			r.Items[j] = "item-" + string(rune('a'+rng.IntN(26))) + strings.Repeat("é", rng.IntN(2))
			r.Scores[j] = math.Float32frombits(rng.Uint32())
		}
		recs[i] = r
	}
	return recs
}

// The Arrow-row encoder writes the same bytes as the struct encoder, and the
// decoder reads back what was written.
func TestRecommendationJSONRowAndRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	recs := randomRecommendations(rng, 500)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewRecommendationBuilder(mem)
	defer b.Release()
	for i := range recs {
		b.Append(&recs[i])
	}
	rec := b.NewRecord()
	defer rec.Release()
	rows := RecRows(rec)

	var dec RecommendationDecoder
	var got Recommendation
	var fromStruct, fromRow []byte
	for i := range recs {
		fromStruct = AppendRecommendationJSON(fromStruct[:0], &recs[i])
		fromRow = AppendRecommendationRowJSON(fromRow[:0], &rows, i)
		if !bytes.Equal(fromStruct, fromRow) {
			t.Fatalf("row %d: struct and row encodings differ:\n%s\n%s", i, fromStruct, fromRow)
		}
		if !json.Valid(fromRow) {
			t.Fatalf("row %d: invalid JSON %s", i, fromRow)
		}
		if err := dec.Decode(fromRow, &got); err != nil {
			t.Fatalf("row %d: decode: %v", i, err)
		}
		want := recs[i]
		// JSON has no NaN or Inf: they are written as null and read as NaN.
		for j, s := range want.Scores {
			if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
				if !math.IsNaN(float64(got.Scores[j])) {
					t.Fatalf("row %d score %d: got %v for %v", i, j, got.Scores[j], s)
				}
				got.Scores[j] = s
			}
		}
		if math.IsNaN(float64(sumScores(got.Scores))) {
			// NaN != NaN in DeepEqual; compare bits instead.
			if !sameBits(got.Scores, want.Scores) {
				t.Fatalf("row %d: scores %v, want %v", i, got.Scores, want.Scores)
			}
			got.Scores, want.Scores = nil, nil
		}
		if !utf8.ValidString(want.UserID) {
			t.Fatalf("test data must be valid UTF-8")
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("row %d: round trip\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func sumScores(s []float32) float32 {
	var t float32
	for _, v := range s {
		t += v
	}
	return t
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// normalize makes empty and nil slices compare equal.
func normalize(r Recommendation) Recommendation {
	if len(r.Items) == 0 {
		r.Items = nil
	}
	if len(r.Scores) == 0 {
		r.Scores = nil
	}
	return r
}

func TestDecodeRecommendationJSONErrors(t *testing.T) {
	r := sampleRecommendation()
	good := string(AppendRecommendationJSON(nil, &r))
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", `{"user_id":`, "decode recommendation"},
		{"not an object", `[1]`, "decode recommendation"},
		{"missing user_id", strings.Replace(good, `"user_id":"u42",`, "", 1), "user_id: missing"},
		{"missing version", strings.Replace(good, `"version":1234567,`, "", 1), "version: missing"},
		{"missing produced_at", strings.Replace(good, `"produced_at":"2026-11-28T04:08:21.200Z",`, "", 1), "produced_at: missing"},
		{"bad time", strings.Replace(good, `"produced_at":"2026-11-28T04:08:21.200Z"`, `"produced_at":"yesterday"`, 1), "produced_at"},
		{"length mismatch", strings.Replace(good, `[0.75,0.1,-1.5e-07]`, `[0.75]`, 1), "1 scores for 3 items"},
		{"item not a string", strings.Replace(good, `"i7"`, `7`, 1), "items[1]"},
		{"negative version", strings.Replace(good, `"version":1234567`, `"version":-1`, 1), "version"},
		{"partition out of range", strings.Replace(good, `"partition":5`, `"partition":4294967296`, 1), "partition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRecommendationJSON([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeRecommendationJSON(%s) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}

	// event_ts_ms is optional: event_ts is used without it; unknown fields
	// are ignored.
	noMs := strings.Replace(good, `"event_ts_ms":1795838901123,`, `"future_field":{"x":[1,2]},`, 1)
	got, err := DecodeRecommendationJSON([]byte(noMs))
	if err != nil {
		t.Fatalf("decode without event_ts_ms: %v", err)
	}
	if got.EventTsMs != r.EventTsMs {
		t.Errorf("EventTsMs from event_ts = %d, want %d", got.EventTsMs, r.EventTsMs)
	}
}

func TestRecommendationJSONAllocs(t *testing.T) {
	r := sampleRecommendation()
	b := NewRecommendationBuilder(nil)
	defer b.Release()
	b.Append(&r)
	rec := b.NewRecord()
	defer rec.Release()
	rows := RecRows(rec)
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendRecommendationJSON(buf[:0], &r) }); n != 0 {
		t.Errorf("AppendRecommendationJSON allocs/op = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendRecommendationRowJSON(buf[:0], &rows, 0) }); n != 0 {
		t.Errorf("AppendRecommendationRowJSON allocs/op = %v, want 0", n)
	}
}

func benchRows(b *testing.B, n int) (RecommendationRows, func()) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := randomRecommendations(rng, n)
	for i := range recs { // realistic: top-20, finite scores
		recs[i].Items = recs[i].Items[:0]
		recs[i].Scores = recs[i].Scores[:0]
		for j := range 20 {
			recs[i].Items = append(recs[i].Items, "item-"+string(rune('a'+j))+"-123456")
			recs[i].Scores = append(recs[i].Scores, rng.Float32())
		}
	}
	bld := NewRecommendationBuilder(nil)
	for i := range recs {
		bld.Append(&recs[i])
	}
	rec := bld.NewRecord()
	bld.Release()
	return RecRows(rec), rec.Release
}

func BenchmarkAppendRecommendationRowJSON(b *testing.B) {
	const n = 1024
	rows, release := benchRows(b, n)
	defer release()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	var bytesOut int
	for i := 0; i < b.N; i++ {
		buf = AppendRecommendationRowJSON(buf[:0], &rows, i%n)
		bytesOut += len(buf)
	}
	b.SetBytes(int64(bytesOut / max(b.N, 1)))
}

func BenchmarkAppendRecommendationJSON(b *testing.B) {
	const n = 1024
	rows, release := benchRows(b, n)
	defer release()
	recs := make([]Recommendation, n)
	for i := range recs {
		recs[i] = rows.Row(i)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = AppendRecommendationJSON(buf[:0], &recs[i%n])
	}
}

func BenchmarkRecommendationDecoder(b *testing.B) {
	rows, release := benchRows(b, 1)
	defer release()
	in := AppendRecommendationRowJSON(nil, &rows, 0)
	var d RecommendationDecoder
	var r Recommendation
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		if err := d.Decode(in, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// The hand-written time formatter agrees with the time package.
func TestAppendRFC3339MillisMatchesTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cases := []int64{0, 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000 /* 2000-02-29 */, 4_107_542_400_000, /* 2100-03-01 */
		maxFastMs - 1, maxFastMs, -1, -86_400_001, math.MaxInt64 / 1000, math.MinInt64 / 1000}
	for range 100_000 {
		cases = append(cases, rng.Int64N(maxFastMs))
	}
	for _, ms := range cases {
		want := time.UnixMilli(ms).UTC().Format(rfc3339Millis)
		if got := string(appendRFC3339Millis(nil, ms)); got != want {
			t.Fatalf("appendRFC3339Millis(%d) = %s, want %s", ms, got, want)
		}
	}
}
