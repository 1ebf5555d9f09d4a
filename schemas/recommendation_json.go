package schemas

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// The JSON form of a Recommendation is the value of each record of the output
// topic (see RECOMMENDATIONS.md, the contract downstream consumers read). It
// is deterministic byte for byte, so a replay or a retry rewrites identical
// records:
//
//   - fields always in this order, all always present, no whitespace:
//     user_id, items, scores, model_version, version, event_ts, event_ts_ms,
//     produced_at, partition, offset;
//   - scores as the shortest decimal that reads back as the same float32
//     (strconv 'g', -1, 32); a non-finite score (which JSON cannot hold) as
//     null, read back as NaN;
//   - event_ts and produced_at as RFC 3339 UTC with exactly three fraction
//     digits ("2026-11-28T04:08:21.123Z"); event_ts_ms as Unix milliseconds;
//   - strings escaped as encoding/json escapes them with SetEscapeHTML(false):
//     quotes, backslashes, control characters, U+2028 and U+2029; invalid
//     UTF-8 becomes \ufffd.
//
// AppendRecommendationJSON (from a struct) and AppendRecommendationRowJSON
// (from a row of an Arrow batch) write the same bytes for the same record.

// rfc3339Millis is the layout of event_ts and produced_at.
const rfc3339Millis = "2006-01-02T15:04:05.000Z"

// AppendRecommendationJSON appends the JSON form of r to dst and returns the
// extended slice. It allocates nothing when dst has room.
func AppendRecommendationJSON(dst []byte, r *Recommendation) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = appendJSONString(dst, r.UserID)
	dst = append(dst, `,"items":[`...)
	for j, it := range r.Items {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, it)
	}
	dst = append(dst, `],"scores":[`...)
	for j, s := range r.Scores {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONFloat32(dst, s)
	}
	dst = append(dst, ']')
	return appendRecommendationTail(dst, r.ModelVersion, r.Version, r.EventTsMs, r.ProducedAtMs, r.Partition, r.Offset)
}

// AppendRecommendationRowJSON appends the JSON form of row i of rows to dst,
// reading the Arrow columns directly: the hot path of the Kafka sink, which
// builds no Recommendation. The bytes equal those of
// AppendRecommendationJSON(dst, &rec) for rec := rows.Row(i). It allocates
// nothing when dst has room.
func AppendRecommendationRowJSON(dst []byte, rows *RecommendationRows, i int) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = appendJSONString(dst, rows.UserID.Value(i))
	dst = append(dst, `,"items":[`...)
	start, end := rows.Items.ValueOffsets(i)
	for j := start; j < end; j++ {
		if j > start {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, rows.ItemValues.Value(int(j)))
	}
	dst = append(dst, `],"scores":[`...)
	start, end = rows.Scores.ValueOffsets(i)
	for j := start; j < end; j++ {
		if j > start {
			dst = append(dst, ',')
		}
		dst = appendJSONFloat32(dst, rows.ScoreValues.Value(int(j)))
	}
	dst = append(dst, ']')
	return appendRecommendationTail(dst, rows.ModelVersion.Value(i), rows.Version.Value(i),
		int64(rows.EventTs.Value(i)), int64(rows.ProducedAt.Value(i)),
		rows.Partition.Value(i), rows.Offset.Value(i))
}

// appendRecommendationTail writes the fields after scores and the closing
// brace.
func appendRecommendationTail(dst []byte, modelVersion string, version uint64, eventTsMs, producedAtMs int64, partition int32, offset int64) []byte {
	dst = append(dst, `,"model_version":`...)
	dst = appendJSONString(dst, modelVersion)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendUint(dst, version, 10)
	dst = append(dst, `,"event_ts":"`...)
	dst = appendRFC3339Millis(dst, eventTsMs)
	dst = append(dst, `","event_ts_ms":`...)
	dst = strconv.AppendInt(dst, eventTsMs, 10)
	dst = append(dst, `,"produced_at":"`...)
	dst = appendRFC3339Millis(dst, producedAtMs)
	dst = append(dst, `","partition":`...)
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, offset, 10)
	return append(dst, '}')
}

// maxFastMs is 10000-01-01T00:00:00Z in Unix milliseconds: below it, and
// from the epoch on, appendRFC3339Millis formats by hand.
const maxFastMs = 253402300800000

// appendRFC3339Millis appends ms as "2006-01-02T15:04:05.000Z". Times from
// 1970 to 9999 (all that validated events carry) are formatted by hand,
// four times faster than time.Time.AppendFormat; others go through it.
func appendRFC3339Millis(dst []byte, ms int64) []byte {
	if ms < 0 || ms >= maxFastMs {
		return time.UnixMilli(ms).UTC().AppendFormat(dst, rfc3339Millis)
	}
	days, rem := ms/86_400_000, ms%86_400_000
	y, m, d := civilFromDays(days)
	hh, rem := rem/3_600_000, rem%3_600_000
	mm, rem := rem/60_000, rem%60_000
	ss, milli := rem/1000, rem%1000
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+hh/10), byte('0'+hh%10), ':', byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), '.',
		byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z')
}

// civilFromDays converts days since 1970-01-01 (>= 0) to a proleptic
// Gregorian date (Howard Hinnant's days_from_civil, inverted).
func civilFromDays(z int64) (year, month, day int64) {
	z += 719468
	era := z / 146097
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11]
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

func appendJSONFloat32(dst []byte, f float32) []byte {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
}

const jsonHexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Plain ASCII is copied in runs;
// only quotes, backslashes, control characters, invalid UTF-8 and the
// JavaScript line terminators U+2028 and U+2029 are escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// RecommendationDecoder reads the JSON form of recommendations, for example
// from the output topic when ClickHouse is rebuilt by replay. It reuses its
// parser between calls; it is not safe for concurrent use. The zero value is
// ready to use.
type RecommendationDecoder struct {
	p   fastjson.Parser
	num []byte
}

// Decode parses b into r. It reuses r.Items and r.Scores' storage, and the
// strings it stores are copies (b may be reused after the call).
//
// Every field is required except event_ts_ms (event_ts is used when it is
// missing); items and scores must have the same length. Unknown fields are
// ignored, so a consumer keeps working when fields are added.
func (d *RecommendationDecoder) Decode(b []byte, r *Recommendation) error {
	v, err := d.p.ParseBytes(b)
	if err != nil {
		return fmt.Errorf("decode recommendation: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return fmt.Errorf("decode recommendation: %w", err)
	}
	if r.UserID, err = recStringField(o, "user_id"); err != nil {
		return err
	}
	if r.ModelVersion, err = recStringField(o, "model_version"); err != nil {
		return err
	}
	items, err := recArrayField(o, "items")
	if err != nil {
		return err
	}
	r.Items = r.Items[:0]
	for j, it := range items {
		sb, err := it.StringBytes()
		if err != nil {
			return fmt.Errorf("decode recommendation: items[%d]: %w", j, err)
		}
		r.Items = append(r.Items, string(sb))
	}
	scores, err := recArrayField(o, "scores")
	if err != nil {
		return err
	}
	if len(scores) != len(items) {
		return fmt.Errorf("decode recommendation: %d scores for %d items", len(scores), len(items))
	}
	r.Scores = r.Scores[:0]
	for j, sv := range scores {
		if sv.Type() == fastjson.TypeNull {
			r.Scores = append(r.Scores, float32(math.NaN()))
			continue
		}
		if sv.Type() != fastjson.TypeNumber {
			return fmt.Errorf("decode recommendation: scores[%d]: not a number", j)
		}
		// Parse the number's text as a float32 directly: going through a
		// float64 rounds twice, and fastjson's float64 parser is not always
		// correctly rounded, so the written float32 might not come back.
		d.num = sv.MarshalTo(d.num[:0])
		f, err := strconv.ParseFloat(string(d.num), 32)
		if err != nil {
			return fmt.Errorf("decode recommendation: scores[%d]: %w", j, err)
		}
		r.Scores = append(r.Scores, float32(f))
	}
	if r.Version, err = recField(o, "version", (*fastjson.Value).Uint64); err != nil {
		return err
	}
	if o.Get("event_ts_ms") != nil {
		if r.EventTsMs, err = recField(o, "event_ts_ms", (*fastjson.Value).Int64); err != nil {
			return err
		}
	} else if r.EventTsMs, err = recTimeField(o, "event_ts"); err != nil {
		return err
	}
	if r.ProducedAtMs, err = recTimeField(o, "produced_at"); err != nil {
		return err
	}
	partition, err := recField(o, "partition", (*fastjson.Value).Int)
	if err != nil {
		return err
	}
	if partition < math.MinInt32 || partition > math.MaxInt32 {
		return fmt.Errorf("decode recommendation: partition %d out of range", partition)
	}
	r.Partition = int32(partition)
	if r.Offset, err = recField(o, "offset", (*fastjson.Value).Int64); err != nil {
		return err
	}
	return nil
}

// DecodeRecommendationJSON parses the JSON form of one recommendation (see
// RecommendationDecoder.Decode for the rules). It allocates a parser per
// call; decode many with a RecommendationDecoder.
func DecodeRecommendationJSON(b []byte) (Recommendation, error) {
	var d RecommendationDecoder
	var r Recommendation
	err := d.Decode(b, &r)
	return r, err
}

var errRecFieldMissing = errors.New("missing")

func recGet(o *fastjson.Object, key string) (*fastjson.Value, error) {
	v := o.Get(key)
	if v == nil {
		return nil, fmt.Errorf("decode recommendation: %s: %w", key, errRecFieldMissing)
	}
	return v, nil
}

func recField[T any](o *fastjson.Object, key string, conv func(*fastjson.Value) (T, error)) (T, error) {
	v, err := recGet(o, key)
	if err != nil {
		var zero T
		return zero, err
	}
	t, err := conv(v)
	if err != nil {
		return t, fmt.Errorf("decode recommendation: %s: %w", key, err)
	}
	return t, nil
}

func recStringField(o *fastjson.Object, key string) (string, error) {
	b, err := recField(o, key, (*fastjson.Value).StringBytes)
	return string(b), err
}

func recArrayField(o *fastjson.Object, key string) ([]*fastjson.Value, error) {
	return recField(o, key, (*fastjson.Value).Array)
}

func recTimeField(o *fastjson.Object, key string) (int64, error) {
	b, err := recField(o, key, (*fastjson.Value).StringBytes)
	if err != nil {
		return 0, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, fmt.Errorf("decode recommendation: %s: %w", key, err)
	}
	return t.UnixMilli(), nil
}
