// Package training learns item embeddings from an event history for the
// built-in model: item2vec (skip-gram with negative sampling), BPR and
// implicit ALS, each deterministic per seed. Train picks one by name and
// returns embeddings that models.WriteModelDir turns into a model
// directory. The pipeline never imports it: `recstream train`, the drills,
// the generator and the evaluation do.
package training

// Interaction is one event of the history the trainer learns from.
type Interaction struct {
	// User is the user id; a user's interactions form their sequences.
	User string
	// Item is the item id; empty (a search) means no item, and the
	// interaction is ignored.
	Item string
	// Type is the event's type code (its index in the configured type list).
	Type uint8
	// TsMs is the event time, Unix ms; it orders a user's interactions and
	// splits them into sessions.
	TsMs int64
}
