package evaluation

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Format names an event file format the loaders read.
type Format string

// Formats.
const (
	// FormatAuto picks the format from the file name (DetectFormat).
	FormatAuto Format = "auto"
	// FormatJSONL is the event contract (schemas/EVENTS.md), one JSON
	// object per line; invalid lines are skipped and counted.
	FormatJSONL Format = "jsonl"
	// FormatMovieLens is MovieLens 100K's u.data: user, item, rating and
	// Unix seconds, tab-separated, no header.
	FormatMovieLens Format = "movielens"
	// FormatMovieLensCSV is MovieLens' ratings.csv (20M, 25M, latest):
	// a userId,movieId,rating,timestamp header, then Unix seconds.
	FormatMovieLensCSV Format = "movielens-csv"
	// FormatRetailRocket is RetailRocket's events.csv:
	// timestamp,visitorid,event,itemid,transactionid with Unix ms and
	// events view, addtocart and transaction.
	FormatRetailRocket Format = "retailrocket"
	// FormatCSV is any CSV with a header, read through a CSVMapping.
	FormatCSV Format = "csv"
)

// Formats returns the formats a user may name.
func Formats() []Format {
	return []Format{FormatAuto, FormatJSONL, FormatMovieLens, FormatMovieLensCSV, FormatRetailRocket, FormatCSV}
}

// LoadOptions configures Load. The zero value reads the format detected
// from the file name with no filter.
type LoadOptions struct {
	// Format is the file's format; "" or FormatAuto detects it from the
	// file name (LoadFile only).
	Format Format
	// Mapping says which columns of a FormatCSV file hold what. Required
	// for FormatCSV, ignored otherwise.
	Mapping CSVMapping
	// MinRating drops MovieLens ratings below it (0 keeps every rating: a
	// rating is an interaction whatever its value). Every kept rating is a
	// "view" event.
	MinRating float64
	// MinTs is the earliest event time the event contract's decoder
	// accepts (JSONL); zero means its default, 2000-01-01.
	MinTs time.Time
}

// DetectFormat picks a format from a file name: *.jsonl, *.json and
// *.ndjson are the event contract; u.data is MovieLens 100K; ratings.csv is
// MovieLens' CSV; events.csv is RetailRocket.
func DetectFormat(path string) (Format, error) {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case slices.Contains([]string{".jsonl", ".json", ".ndjson"}, filepath.Ext(base)):
		return FormatJSONL, nil
	case base == "u.data":
		return FormatMovieLens, nil
	case base == "ratings.csv":
		return FormatMovieLensCSV, nil
	case base == "events.csv":
		return FormatRetailRocket, nil
	}
	return "", fmt.Errorf("cannot tell the format of %s from its name: name one of %v", path, Formats()[1:])
}

// LoadFile reads an event file; see Load.
func LoadFile(ctx context.Context, path string, opts LoadOptions) (*Dataset, error) {
	if opts.Format == "" || opts.Format == FormatAuto {
		f, err := DetectFormat(path)
		if err != nil {
			return nil, err
		}
		opts.Format = f
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open events: %w", err)
	}
	defer f.Close()
	ds, err := Load(ctx, f, path, opts)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// Load reads events of opts.Format from r (named source in messages) into
// a Dataset sorted by time, with the default event types. Records that
// cannot be read are counted in Dataset.Skipped, not returned as errors;
// an error means the input as a whole is unusable (I/O, a missing header
// column, a bad mapping) or ctx ended.
func Load(ctx context.Context, r io.Reader, source string, opts LoadOptions) (*Dataset, error) {
	ds := newDataset(source)
	var err error
	switch opts.Format {
	case FormatJSONL:
		err = loadJSONL(ctx, r, ds, opts.MinTs)
	case FormatMovieLens:
		err = loadMovieLensData(ctx, r, ds, opts.MinRating)
	case FormatMovieLensCSV:
		err = loadMovieLensCSV(ctx, r, ds, opts.MinRating)
	case FormatRetailRocket:
		err = loadRetailRocket(ctx, r, ds)
	case FormatCSV:
		err = loadMappedCSV(ctx, r, ds, opts.Mapping)
	default:
		return nil, fmt.Errorf("load %s: unknown format %q (one of %v)", source, opts.Format, Formats()[1:])
	}
	if err != nil {
		return nil, fmt.Errorf("load %s as %s: %w", source, opts.Format, err)
	}
	ds.finish()
	return ds, nil
}

// checkEvery is how many lines a loader reads between looks at its context.
const checkEvery = 1 << 16

// eachLine calls fn with each line of r (without its line break) and its
// 1-based number, checking ctx now and then.
func eachLine(ctx context.Context, r io.Reader, fn func(line []byte, n int)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		fn(sc.Bytes(), n)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read line %d: %w", n+1, err)
	}
	return ctx.Err()
}

// canonicalType maps an event name of a public data set to a default
// event type name; "" when it is none.
func canonicalType(name string) string {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "view", "pageview", "detail":
		return "view"
	case "click":
		return "click"
	case "add_to_cart", "addtocart", "add-to-cart", "cart":
		return "add_to_cart"
	case "purchase", "transaction", "buy", "order":
		return "purchase"
	case "search":
		return "search"
	}
	return ""
}

// typeCode returns the code in ds.Types of an event name or alias.
func typeCode(ds *Dataset, name string) (uint8, bool) {
	return ds.TypeCode(canonicalType(name))
}
