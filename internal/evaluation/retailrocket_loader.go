package evaluation

import (
	"context"
	"io"
	"strings"
)

// loadRetailRocket reads RetailRocket's events.csv: a header naming
// timestamp (Unix ms), visitorid, event and itemid (transactionid is not
// used), in any order. Events view, addtocart and transaction become view,
// add_to_cart and purchase; any other event is skipped and counted.
func loadRetailRocket(ctx context.Context, r io.Reader, ds *Dataset) error {
	var cols [4]int
	var headerErr error
	err := eachLine(ctx, r, func(line []byte, n int) {
		if headerErr != nil {
			return
		}
		fields := strings.Split(strings.TrimRight(string(line), "\r"), ",")
		if n == 1 {
			cols, headerErr = findColumns(fields, "timestamp", "visitorid", "event", "itemid")
			return
		}
		if len(fields) == 1 && fields[0] == "" {
			return
		}
		if len(fields) < 4 {
			ds.Skipped++
			return
		}
		ts, err := parseTs(fields[cols[0]], "ms")
		typ, ok := typeCode(ds, fields[cols[2]])
		user, item := fields[cols[1]], fields[cols[3]]
		if err != nil || !ok || user == "" || item == "" {
			ds.Skipped++
			return
		}
		ds.add(user, item, typ, ts)
	})
	if headerErr != nil {
		return headerErr
	}
	return err
}
