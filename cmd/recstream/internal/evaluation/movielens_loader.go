package evaluation

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// loadMovieLensData reads MovieLens 100K's u.data: "user item rating
// seconds", tab-separated (any run of spaces or tabs is accepted), no
// header. Every rating of at least minRating is a view at its time.
func loadMovieLensData(ctx context.Context, r io.Reader, ds *Dataset, minRating float64) error {
	view, _ := ds.TypeCode("view")
	return eachLine(ctx, r, func(line []byte, _ int) {
		f := bytes.Fields(line)
		if len(f) == 0 {
			return
		}
		if len(f) != 4 {
			ds.skip("short_record")
			return
		}
		addRating(ds, string(f[0]), string(f[1]), string(f[2]), string(f[3]), minRating, view)
	})
}

// loadMovieLensCSV reads MovieLens' ratings.csv: a header naming userId,
// movieId, rating and timestamp (Unix seconds), in any order.
func loadMovieLensCSV(ctx context.Context, r io.Reader, ds *Dataset, minRating float64) error {
	view, _ := ds.TypeCode("view")
	return eachHeaderedCSVRow(ctx, r, ds, [4]string{"userId", "movieId", "rating", "timestamp"}, func(fields []string, cols [4]int) {
		addRating(ds, fields[cols[0]], fields[cols[1]], fields[cols[2]], fields[cols[3]], minRating, view)
	})
}

// eachHeaderedCSVRow reads a comma-separated file whose first line names
// its columns, finds the four named columns in any order, and calls fn for
// every data row with their positions; short rows are counted skipped,
// blank lines ignored.
func eachHeaderedCSVRow(ctx context.Context, r io.Reader, ds *Dataset, names [4]string, fn func(fields []string, cols [4]int)) error {
	var cols [4]int
	var headerErr error
	err := eachLine(ctx, r, func(line []byte, n int) {
		if headerErr != nil {
			return
		}
		fields := strings.Split(strings.TrimRight(string(line), "\r"), ",")
		if n == 1 {
			cols, headerErr = findColumns(fields, names[:]...)
			return
		}
		if len(fields) == 1 && fields[0] == "" {
			return
		}
		if len(fields) < 4 {
			ds.skip("short_record")
			return
		}
		fn(fields, cols)
	})
	if headerErr != nil {
		return headerErr
	}
	return err
}

// addRating adds one rating as a view, or counts it skipped when a field
// does not parse.
func addRating(ds *Dataset, user, item, rating, secs string, minRating float64, view uint8) {
	r, err1 := strconv.ParseFloat(rating, 64)
	ts, err2 := parseTs(secs, "s")
	switch {
	case err1 != nil:
		ds.skip("bad_rating")
		return
	case err2 != nil:
		ds.skip("bad_timestamp")
		return
	case user == "" || item == "":
		ds.skip("missing_field")
		return
	}
	if r < minRating {
		return
	}
	ds.add(user, item, view, ts)
}

// findColumns returns the index of each wanted column in header.
func findColumns(header []string, want ...string) ([4]int, error) {
	var cols [4]int
	for k, name := range want {
		cols[k] = -1
		for i, h := range header {
			if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == name {
				cols[k] = i
			}
		}
		if cols[k] < 0 {
			return cols, fmt.Errorf("header %q has no column %q", strings.Join(header, ","), name)
		}
	}
	return cols, nil
}

// parseTs parses a time in unit "s" (seconds, fractions allowed) or "ms"
// (milliseconds) into Unix ms.
func parseTs(s, unit string) (int64, error) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if unit == "s" {
			return v * 1000, nil
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v || v > 1e15 || v < -1e15 {
		return 0, fmt.Errorf("time %q is not a number", s)
	}
	if unit == "s" {
		v *= 1000
	}
	return int64(v), nil
}
