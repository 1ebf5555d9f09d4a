package generator

import (
	"fmt"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/training"
)

// TrainingHistory takes the next n valid events of g, decoded through the
// event contract, as a trainer's input: the history of the same synthetic
// world that the stream after it continues.
func TrainingHistory(g *Generator, n int) ([]training.Interaction, error) {
	dec := schemas.NewEventDecoder(schemas.EventLimits{}.WithDefaults())
	history := make([]training.Interaction, 0, n)
	var ev schemas.Event
	for len(history) < n {
		r := g.Next()
		if r.Kind != KindValid {
			continue
		}
		if derr := dec.Decode(r.Key, r.Value, r.Time, &ev); derr != nil {
			return nil, fmt.Errorf("generator wrote an invalid event: %v", derr)
		}
		history = append(history, training.Interaction{User: string(ev.UserID), Item: string(ev.ItemID), Type: ev.Type, TsMs: ev.TsMs})
	}
	return history, nil
}
