package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// EventSchemaVersion names the version of the event contract that
// EventDecoder implements and EVENTS.md documents. A change that makes a
// valid v1 event invalid, or changes what a field means, gets a new version.
const EventSchemaVersion = "recstream.event.v1"

// Default limits of EventLimits.
const (
	DefaultMaxMessageBytes = 16384
	DefaultMaxIDBytes      = 128
	DefaultMaxFieldBytes   = 512
	DefaultMaxQueryBytes   = 1024
	DefaultMaxFutureSkew   = 24 * time.Hour

	// MaxEventTypes is the most event types a configuration may name: a
	// type is stored as its index in a uint8 column.
	MaxEventTypes = 255

	// SearchEventType is the event type for which query, not item_id, is
	// required.
	SearchEventType = "search"
)

// DefaultMinTsMs is the earliest ts accepted by default, 2000-01-01T00:00:00Z
// in Unix milliseconds: on a live stream an earlier ts is a producer bug (a
// zero value, seconds sent as millis), not an old event. Historical replays
// lower it (min_ts).
const DefaultMinTsMs = 946684800000

// EventLimits bounds what the decoder accepts. The zero value of each field
// means its default, so the zero EventLimits is the documented contract.
type EventLimits struct {
	// MaxMessageBytes bounds the whole Kafka message value; a larger one is
	// rejected as oversize before it is parsed. Zero means 16384.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxIDBytes bounds event_id, user_id, item_id and session_id, in bytes
	// after JSON unescaping. Zero means 128.
	MaxIDBytes int `yaml:"max_id_bytes"`
	// MaxFieldBytes bounds category. Zero means 512.
	MaxFieldBytes int `yaml:"max_field_bytes"`
	// MaxQueryBytes bounds query. Zero means 1024.
	MaxQueryBytes int `yaml:"max_query_bytes"`
	// Types lists the accepted event types; an event's type code is its
	// index here, so append new types at the end and never reorder or
	// remove one while old data is kept. Nil means DefaultEventTypes().
	// At most 255 entries, each non-empty, no duplicates.
	Types []string `yaml:"types"`
	// MaxFutureSkew is how far ts may lie after the message's log time
	// (producer clocks run fast); beyond it ts is bad_timestamp. Zero means
	// 24h.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// MinTs is the earliest ts accepted; an earlier one is bad_timestamp.
	// Zero means DefaultMinTsMs (2000-01-01). Set it lower to replay older
	// history (MovieLens 100K is from 1997).
	MinTs time.Time `yaml:"min_ts"`
}

// WithDefaults returns l with every zero field set to its default.
func (l EventLimits) WithDefaults() EventLimits {
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxIDBytes == 0 {
		l.MaxIDBytes = DefaultMaxIDBytes
	}
	if l.MaxFieldBytes == 0 {
		l.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if l.MaxQueryBytes == 0 {
		l.MaxQueryBytes = DefaultMaxQueryBytes
	}
	if l.Types == nil {
		l.Types = DefaultEventTypes()
	}
	if l.MaxFutureSkew == 0 {
		l.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if l.MinTs.IsZero() {
		l.MinTs = time.UnixMilli(DefaultMinTsMs).UTC()
	}
	return l
}

// Validate reports the first field of l that is out of range, naming its
// yaml key. Zero fields are valid: they mean the default.
func (l EventLimits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_message_bytes", l.MaxMessageBytes},
		{"max_id_bytes", l.MaxIDBytes},
		{"max_field_bytes", l.MaxFieldBytes},
		{"max_query_bytes", l.MaxQueryBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s: must be >= 0 (0 means the default), got %d", f.name, f.v)
		}
	}
	if l.MaxFutureSkew < 0 {
		return fmt.Errorf("max_future_skew: must be >= 0 (0 means %s), got %s", DefaultMaxFutureSkew, l.MaxFutureSkew)
	}
	if l.Types != nil && len(l.Types) == 0 {
		return errors.New("types: must name at least one event type (omit it for the defaults)")
	}
	if len(l.Types) > MaxEventTypes {
		return fmt.Errorf("types: at most %d event types, got %d", MaxEventTypes, len(l.Types))
	}
	seen := make(map[string]int, len(l.Types))
	for i, t := range l.Types {
		if t == "" {
			return fmt.Errorf("types[%d]: must not be empty", i)
		}
		if j, dup := seen[t]; dup {
			return fmt.Errorf("types[%d]: %q duplicates types[%d]", i, t, j)
		}
		seen[t] = i
	}
	return nil
}

// DecodeError says why a record was rejected. Reason is one of the Reason*
// codes (machine-readable, stable); Detail is for people: it names the field
// at fault and what was wrong, quoting at most a short prefix of the input.
type DecodeError struct {
	Reason string
	Detail string
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Detail }

// EventDecoder decodes and validates one event per call. It reuses its parser
// between calls, so a valid event costs no allocation; it is not safe for
// concurrent use (give each goroutine its own).
type EventDecoder struct {
	limits       EventLimits
	types        map[string]uint8
	searchType   int // index of SearchEventType in limits.Types, -1 when absent
	futureSkewMs int64
	minTsMs      int64
	p            fastjson.Parser
}

// NewEventDecoder returns a decoder for limits; zero fields take their
// defaults. limits must pass Validate: a decoder built from invalid limits
// panics here rather than misclassify events later.
func NewEventDecoder(limits EventLimits) *EventDecoder {
	if err := limits.Validate(); err != nil {
		panic(fmt.Sprintf("schemas.NewEventDecoder: invalid limits: %v", err))
	}
	limits = limits.WithDefaults()
	d := &EventDecoder{
		limits:       limits,
		types:        make(map[string]uint8, len(limits.Types)),
		searchType:   -1,
		futureSkewMs: limits.MaxFutureSkew.Milliseconds(),
		minTsMs:      limits.MinTs.UnixMilli(),
	}
	for i, t := range limits.Types {
		d.types[t] = uint8(i)
		if t == SearchEventType {
			d.searchType = i
		}
	}
	return d
}

// Limits returns the decoder's limits with defaults applied.
func (d *EventDecoder) Limits() EventLimits { return d.limits }

// Field bits, for duplicate detection.
const (
	fEventID = 1 << iota
	fUserID
	fItemID
	fType
	fTs
	fSessionID
	fQuery
	fPrice
	fCategory
)

// Decode parses value, a Kafka message value, into ev and validates it. It
// returns nil when the event is valid; otherwise a *DecodeError whose Reason
// is one of the Reason* codes, and ev is unspecified. The byte slices in ev
// point into the decoder and are valid until the next call.
//
// key is the message key: when it is not empty it must equal user_id
// (producers key by user_id so a user's events stay in one partition, in
// order); an empty key is accepted. logTime is the message's log timestamp:
// ts may be at most MaxFutureSkew after it; a zero logTime skips that check.
//
// The first problem found is reported, checked in this order: message size;
// JSON syntax (the value must be an object); each known field in document
// order (JSON type, size, UTF-8, duplicates); required fields present;
// type known; item_id or query as the type requires; ts valid; key equal to
// user_id. JSON null counts as absent and an empty string as absent.
//
// The result is a *DecodeError, not an error, so that the valid path does
// not allocate: compare it with nil before storing it in an error variable
// (a nil *DecodeError in an error interface is not a nil error).
func (d *EventDecoder) Decode(key, value []byte, logTime time.Time, ev *Event) *DecodeError {
	*ev = Event{}
	if len(value) > d.limits.MaxMessageBytes {
		return &DecodeError{Reason: ReasonOversize,
			Detail: fmt.Sprintf("message is %d bytes, limit %d (max_message_bytes)", len(value), d.limits.MaxMessageBytes)}
	}
	root, err := d.p.ParseBytes(value)
	if err != nil {
		return &DecodeError{Reason: ReasonMalformedJSON, Detail: clip(err.Error(), 200)}
	}
	obj, err := root.Object()
	if err != nil {
		return &DecodeError{Reason: ReasonMalformedJSON, Detail: "value is a JSON " + root.Type().String() + ", not an object"}
	}

	var (
		seen    int
		typeRaw []byte
		ts      *fastjson.Value
		derr    *DecodeError
	)
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if derr != nil {
			return
		}
		var bit, limit int
		var dst *[]byte
		switch string(k) {
		case "event_id":
			bit, limit, dst = fEventID, d.limits.MaxIDBytes, &ev.EventID
		case "user_id":
			bit, limit, dst = fUserID, d.limits.MaxIDBytes, &ev.UserID
		case "item_id":
			bit, limit, dst = fItemID, d.limits.MaxIDBytes, &ev.ItemID
		case "session_id":
			bit, limit, dst = fSessionID, d.limits.MaxIDBytes, &ev.SessionID
		case "query":
			bit, limit, dst = fQuery, d.limits.MaxQueryBytes, &ev.Query
		case "category":
			bit, limit, dst = fCategory, d.limits.MaxFieldBytes, &ev.Category
		case "type":
			bit, limit, dst = fType, d.limits.MaxFieldBytes, &typeRaw
		case "ts":
			bit = fTs
		case "price":
			bit = fPrice
		default:
			return // unknown fields are ignored: producers may add fields first
		}
		if seen&bit != 0 {
			derr = &DecodeError{Reason: ReasonInvalidField, Detail: string(k) + ": duplicate field"}
			return
		}
		seen |= bit
		if v.Type() == fastjson.TypeNull {
			return // null counts as absent
		}
		switch bit {
		case fTs:
			ts = v
		case fPrice:
			derr = decodePrice(v, ev)
		default:
			derr = decodeString(k, v, limit, dst)
		}
	})
	if derr != nil {
		return derr
	}

	switch {
	case ev.EventID == nil:
		return missing("event_id")
	case ev.UserID == nil:
		return missing("user_id")
	case typeRaw == nil:
		return missing("type")
	case ts == nil:
		return missing("ts")
	}
	typ, ok := d.types[string(typeRaw)]
	if !ok {
		return &DecodeError{Reason: ReasonUnknownType,
			Detail: fmt.Sprintf("type %q is not one of %s", clip(string(typeRaw), 64), strings.Join(d.limits.Types, ", "))}
	}
	ev.Type = typ
	if int(typ) == d.searchType {
		if ev.Query == nil {
			return &DecodeError{Reason: ReasonMissingField, Detail: "query: required for type search"}
		}
	} else if ev.ItemID == nil {
		return &DecodeError{Reason: ReasonMissingField, Detail: "item_id: required for type " + d.limits.Types[typ]}
	}
	if derr := d.decodeTs(ts, logTime, ev); derr != nil {
		return derr
	}
	if len(key) > 0 && !bytes.Equal(key, ev.UserID) {
		return &DecodeError{Reason: ReasonKeyMismatch,
			Detail: fmt.Sprintf("message key %q is not user_id %q", clip(string(key), 64), clip(string(ev.UserID), 64))}
	}
	return nil
}

func missing(field string) *DecodeError {
	return &DecodeError{Reason: ReasonMissingField, Detail: field + ": required"}
}

// decodeString stores v's string in *dst (nil when empty) after checking its
// JSON type, size and encoding.
func decodeString(k []byte, v *fastjson.Value, limit int, dst *[]byte) *DecodeError {
	if v.Type() != fastjson.TypeString {
		return &DecodeError{Reason: ReasonInvalidField, Detail: string(k) + ": expected a string, got " + v.Type().String()}
	}
	s, _ := v.StringBytes() // cannot fail: the type is string
	if len(s) > limit {
		return &DecodeError{Reason: ReasonOversize, Detail: fmt.Sprintf("%s: %d bytes, limit %d", k, len(s), limit)}
	}
	if !utf8.Valid(s) {
		return &DecodeError{Reason: ReasonInvalidField, Detail: string(k) + ": not valid UTF-8"}
	}
	if len(s) == 0 {
		*dst = nil
		return nil
	}
	*dst = s
	return nil
}

func decodePrice(v *fastjson.Value, ev *Event) *DecodeError {
	if v.Type() != fastjson.TypeNumber {
		return &DecodeError{Reason: ReasonInvalidField, Detail: "price: expected a number, got " + v.Type().String()}
	}
	p, err := v.Float64()
	if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
		return &DecodeError{Reason: ReasonInvalidField, Detail: "price: not a finite number"}
	}
	if p < 0 {
		return &DecodeError{Reason: ReasonInvalidField, Detail: fmt.Sprintf("price: must be >= 0, got %g", p)}
	}
	ev.Price = p + 0 // +0 turns -0 into 0, so equal prices have equal bits
	ev.HasPrice = true
	return nil
}

func (d *EventDecoder) decodeTs(v *fastjson.Value, logTime time.Time, ev *Event) *DecodeError {
	var ms int64
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		var ok bool
		if ms, ok = ParseRFC3339Millis(s); !ok {
			return &DecodeError{Reason: ReasonBadTimestamp,
				Detail: fmt.Sprintf("ts: %q is not an RFC 3339 date-time", clip(string(s), 64))}
		}
	case fastjson.TypeNumber:
		n, err := v.Int64()
		if err != nil {
			return &DecodeError{Reason: ReasonBadTimestamp,
				Detail: fmt.Sprintf("ts: %s is not an integer of epoch milliseconds", clip(v.String(), 64))}
		}
		ms = n
	default:
		return &DecodeError{Reason: ReasonInvalidField,
			Detail: "ts: expected a string (RFC 3339) or a number (epoch milliseconds), got " + v.Type().String()}
	}
	if ms < d.minTsMs {
		return &DecodeError{Reason: ReasonBadTimestamp,
			Detail: fmt.Sprintf("ts: %d ms is before %s (min_ts)", ms, d.limits.MinTs.UTC().Format(time.RFC3339))}
	}
	if !logTime.IsZero() {
		if limit := logTime.UnixMilli() + d.futureSkewMs; ms > limit {
			return &DecodeError{Reason: ReasonBadTimestamp,
				Detail: fmt.Sprintf("ts: %d ms is %s after the log time (max_future_skew %s)",
					ms, time.Duration(ms-logTime.UnixMilli())*time.Millisecond, d.limits.MaxFutureSkew)}
		}
	}
	ev.TsMs = ms
	return nil
}

// clip shortens s to at most n bytes for an error detail, so a hostile
// message cannot make its rejection huge.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ParseRFC3339Millis parses an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS,
// optional fraction of any length, Z or ±HH:MM offset; 'T' and 'Z' may be
// lower case) into Unix milliseconds, truncating the fraction below a
// millisecond. Leap seconds (second 60) are rejected. It does not allocate.
func ParseRFC3339Millis(s []byte) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	var frac int64
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			if i <= 3 {
				frac = frac*10 + int64(rest[i]-'0')
			}
			i++
		}
		if i == 1 {
			return 0, false // a '.' needs at least one digit
		}
		for n := i; n <= 3; n++ {
			frac *= 10 // ".5" is 500 ms
		}
		rest = rest[i:]
	}
	var offsetSec int64
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offsetSec = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offsetSec = -offsetSec
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offsetSec
	return secs*1000 + frac, true
}

// digits parses b, all ASCII digits, as a decimal number.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 { // year 0000 in January or February: floor division
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
