package schemas

// Event is one decoded clickstream event, as a producer writes it (JSON, one
// per Kafka message, key = user_id). See EVENTS.md for the contract producers
// read; this struct is its decoded form.
//
// The byte-slice fields point into the decoder's reused buffers: they are
// valid until the next Decode call. Copy what must be kept (EventBuilder.Append
// copies).
type Event struct {
	// EventID is the producer's unique id of the event, used to recognise a
	// producer's retry of the same event. Required, 1..MaxIDBytes bytes.
	EventID []byte
	// UserID identifies the user; it must equal the Kafka message key so that
	// all of a user's events land in one partition, in order. Required.
	UserID []byte
	// ItemID identifies the item the event is about. Required for every type
	// but search.
	ItemID []byte
	// Type is the index of the event's type in EventLimits.Types (0 view,
	// 1 click, 2 add_to_cart, 3 purchase, 4 search with the default types).
	Type uint8
	// TsMs is the event time in Unix milliseconds (from RFC 3339 or epoch
	// milliseconds in the JSON). Required.
	TsMs int64
	// SessionID is optional; nil when absent, null or empty.
	SessionID []byte
	// Query is the search text: required for type search, optional (nil when
	// absent) for the others.
	Query []byte
	// Price is the item's price when HasPrice is set; must be finite and >= 0.
	Price    float64
	HasPrice bool
	// Category is optional; nil when absent, null or empty.
	Category []byte
}

// Reasons an input record is dead-lettered. They are stable, machine-readable
// codes: producers and alerts match on them.
const (
	ReasonMalformedJSON = "malformed_json" // the value is not a JSON object
	ReasonMissingField  = "missing_field"  // a required field is absent or empty
	ReasonInvalidField  = "invalid_field"  // a field has the wrong JSON type or an invalid value
	ReasonUnknownType   = "unknown_type"   // type is not one of EventLimits.Types
	ReasonOversize      = "oversize"       // the message or a field exceeds its limit
	ReasonKeyMismatch   = "key_mismatch"   // the message key is not the event's user_id
	ReasonBadTimestamp  = "bad_timestamp"  // ts is neither RFC 3339 nor epoch millis, or out of range
)

// DefaultEventTypes returns the event types accepted when the configuration
// names none. Their order fixes their type codes.
func DefaultEventTypes() []string {
	return []string{"view", "click", "add_to_cart", "purchase", "search"}
}
