package evaluation

import (
	"context"
	"io"
	"time"

	"github.com/recstream/recstream/schemas"
)

// loadJSONL reads the event contract, one JSON object per line, with the
// pipeline's own decoder, so that a file is read exactly as the topic would
// be. Lines the decoder rejects are skipped and counted.
func loadJSONL(ctx context.Context, r io.Reader, ds *Dataset, minTs time.Time) error {
	dec := schemas.NewEventDecoder(schemas.EventLimits{Types: ds.Types, MinTs: minTs}.WithDefaults())
	// A history's events may lie far in the past; only the decoder's
	// future-skew check reads this time.
	now := time.Now()
	var ev schemas.Event
	return eachLine(ctx, r, func(line []byte, _ int) {
		if len(line) == 0 {
			return
		}
		if derr := dec.Decode(nil, line, now, &ev); derr != nil {
			ds.skip(derr.Reason)
			return
		}
		ds.add(string(ev.UserID), string(ev.ItemID), ev.Type, ev.TsMs)
	})
}
