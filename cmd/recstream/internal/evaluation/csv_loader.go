package evaluation

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CSVMapping says which columns of a CSV file (FormatCSV) hold what. The
// file must have a header; columns are named by header name or by 0-based
// position.
type CSVMapping struct {
	// User, Item and Ts name the user, item and time columns. Required.
	User, Item, Ts string
	// Type names the event type column; its values are type names or the
	// aliases of public data sets (addtocart, transaction, ...). Empty
	// means every event is a view.
	Type string
	// TsUnit is the unit of Ts: "s" (Unix seconds, fractions allowed) or
	// "ms" (Unix milliseconds). Empty means "ms".
	TsUnit string
	// Comma is the field separator; 0 means ','.
	Comma rune
}

// ParseCSVMapping parses "user=COL,item=COL,ts=COL[,type=COL]" (the --map
// flag); tsUnit is "s" or "ms" ("" means "ms").
func ParseCSVMapping(spec, tsUnit string) (CSVMapping, error) {
	m := CSVMapping{TsUnit: tsUnit}
	for _, part := range strings.Split(spec, ",") {
		key, col, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || col == "" {
			return m, fmt.Errorf("map: %q is not key=column", part)
		}
		switch key {
		case "user":
			m.User = col
		case "item":
			m.Item = col
		case "ts":
			m.Ts = col
		case "type":
			m.Type = col
		default:
			return m, fmt.Errorf("map: unknown key %q (user, item, ts, type)", key)
		}
	}
	return m, m.Validate()
}

// Validate checks m; errors name the flag.
func (m CSVMapping) Validate() error {
	switch {
	case m.User == "" || m.Item == "" || m.Ts == "":
		return errors.New("map: user, item and ts columns are required (user=COL,item=COL,ts=COL)")
	case m.TsUnit != "" && m.TsUnit != "s" && m.TsUnit != "ms":
		return fmt.Errorf("ts-unit: must be s or ms, got %q", m.TsUnit)
	}
	return nil
}

// loadMappedCSV reads a CSV file with a header through m.
func loadMappedCSV(ctx context.Context, r io.Reader, ds *Dataset, m CSVMapping) error {
	if err := m.Validate(); err != nil {
		return err
	}
	unit := m.TsUnit
	if unit == "" {
		unit = "ms"
	}
	cr := csv.NewReader(r)
	if m.Comma != 0 {
		cr.Comma = m.Comma
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	col := func(name string) (int, error) {
		if name == "" {
			return -1, nil
		}
		for i, h := range header {
			if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == name {
				return i, nil
			}
		}
		if i, err := strconv.Atoi(name); err == nil && i >= 0 && i < len(header) {
			return i, nil
		}
		return -1, fmt.Errorf("header %q has no column %q", strings.Join(header, ","), name)
	}
	var idx [4]int
	for k, name := range []string{m.User, m.Item, m.Ts, m.Type} {
		if idx[k], err = col(name); err != nil {
			return err
		}
	}
	view, _ := ds.TypeCode("view")
	for n := 1; ; n++ {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			ds.skip("bad_csv_record")
			continue
		}
		if err != nil {
			return fmt.Errorf("read record %d: %w", n, err)
		}
		if idx[0] >= len(rec) || idx[1] >= len(rec) || idx[2] >= len(rec) || idx[3] >= len(rec) {
			ds.skip("short_record")
			continue
		}
		ts, err := parseTs(rec[idx[2]], unit)
		typ, ok := view, true
		if idx[3] >= 0 {
			typ, ok = typeCode(ds, rec[idx[3]])
		}
		user, item := strings.TrimSpace(rec[idx[0]]), strings.TrimSpace(rec[idx[1]])
		if reason := rejectReason(err, ok, user != "" && (item != "" || ds.Types[typ] == "search")); reason != "" {
			ds.skip(reason)
			continue
		}
		ds.add(user, item, typ, ts)
	}
}
