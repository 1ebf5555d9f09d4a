package evaluation

import (
	"context"
	"io"
)

// loadRetailRocket reads RetailRocket's events.csv: a header naming
// timestamp (Unix ms), visitorid, event and itemid (transactionid is not
// used), in any order. Events view, addtocart and transaction become view,
// add_to_cart and purchase; any other event is skipped and counted.
func loadRetailRocket(ctx context.Context, r io.Reader, ds *Dataset) error {
	return eachHeaderedCSVRow(ctx, r, ds, [4]string{"timestamp", "visitorid", "event", "itemid"}, func(fields []string, cols [4]int) {
		ts, err := parseTs(fields[cols[0]], "ms")
		typ, ok := typeCode(ds, fields[cols[2]])
		user, item := fields[cols[1]], fields[cols[3]]
		if reason := rejectReason(err, ok, user != "" && item != ""); reason != "" {
			ds.skip(reason)
			return
		}
		ds.add(user, item, typ, ts)
	})
}
