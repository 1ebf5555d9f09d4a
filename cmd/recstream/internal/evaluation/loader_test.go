package evaluation

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// flatten returns a dataset flattened for comparison: "user item type ts" per
// event, in dataset order.
func flatten(ds *Dataset) []string {
	var out []string
	for _, e := range ds.Events {
		item := "-"
		if e.Item != NoItem {
			item = ds.Items[e.Item]
		}
		out = append(out, strings.Join([]string{ds.Users[e.User], item, ds.Types[e.Type], strconv.FormatInt(e.TsMs, 10)}, " "))
	}
	return out
}

func TestLoaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    LoadOptions
		input   string
		want    []string
		skipped map[string]int // by reason
	}{
		{
			name: "event contract JSON lines, out of order, with a bad line and a search",
			opts: LoadOptions{Format: FormatJSONL},
			input: `{"event_id":"e1","user_id":"u1","item_id":"i1","type":"view","ts":1767225602000}
{"event_id":"e2","user_id":"u2","item_id":"i2","type":"purchase","ts":"2026-01-01T00:00:01Z"}
not json
{"event_id":"e3","user_id":"u1","type":"search","query":"shoes","ts":1767225603000}
{"event_id":"e4","user_id":"u1","item_id":"i3","type":"teleport","ts":1767225604000}

`,
			want: []string{
				"u2 i2 purchase 1767225601000",
				"u1 i1 view 1767225602000",
				"u1 - search 1767225603000",
			},
			skipped: map[string]int{"malformed_json": 1, "unknown_type": 1},
		},
		{
			name: "event contract from before 2000 is skipped as bad_timestamp by default",
			opts: LoadOptions{Format: FormatJSONL},
			input: `{"event_id":"e1","user_id":"u1","item_id":"i1","type":"view","ts":"1997-09-20T03:05:10Z"}
{"event_id":"e2","user_id":"u1","item_id":"i2","type":"view","ts":"2001-01-01T00:00:00Z"}
`,
			want:    []string{"u1 i2 view 978307200000"},
			skipped: map[string]int{"bad_timestamp": 1},
		},
		{
			name: "event contract from before 2000 is read with a lower min_ts",
			opts: LoadOptions{Format: FormatJSONL, MinTs: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)},
			input: `{"event_id":"e1","user_id":"u1","item_id":"i1","type":"view","ts":"1997-09-20T03:05:10Z"}
`,
			want: []string{"u1 i1 view 874724710000"},
		},
		{
			name: "MovieLens u.data: tab-separated, seconds, min rating 3",
			opts: LoadOptions{Format: FormatMovieLens, MinRating: 3},
			input: "196\t242\t3\t881250949\n186\t302\t3\t881250948\n22\t377\t1\t878887116\n" +
				"244\t51\t2\tx\n166 346 5 886397596\n",
			want: []string{
				"186 302 view 881250948000",
				"196 242 view 881250949000",
				"166 346 view 886397596000",
			},
			skipped: map[string]int{"bad_timestamp": 1},
		},
		{
			name:  "MovieLens ratings.csv with columns reordered and CRLF",
			opts:  LoadOptions{Format: FormatMovieLensCSV},
			input: "timestamp,userId,movieId,rating\r\n964982703,1,1,4.0\r\n964981247,1,3,4.0\r\n964982224,2,6,4.0\r\nbad\r\n",
			want: []string{
				"1 3 view 964981247000",
				"2 6 view 964982224000",
				"1 1 view 964982703000",
			},
			skipped: map[string]int{"short_record": 1},
		},
		{
			name: "RetailRocket events.csv",
			opts: LoadOptions{Format: FormatRetailRocket},
			input: "timestamp,visitorid,event,itemid,transactionid\n" +
				"1433221332117,257597,view,355908,\n" +
				"1433224214164,992329,view,248676,\n" +
				"1433221999827,111016,addtocart,318965,\n" +
				"1433222276276,483717,transaction,253185,4000\n" +
				"1433222276277,483717,wishlist,253185,\n",
			want: []string{
				"257597 355908 view 1433221332117",
				"111016 318965 add_to_cart 1433221999827",
				"483717 253185 purchase 1433222276276",
				"992329 248676 view 1433224214164",
			},
			skipped: map[string]int{"unknown_type": 1},
		},
		{
			name: "generic CSV by header name, seconds, quoted fields",
			opts: LoadOptions{Format: FormatCSV, Mapping: CSVMapping{User: "customer", Item: "sku", Ts: "when", Type: "action", TsUnit: "s"}},
			input: "when,action,customer,sku\n" +
				"1700000001.5,cart,\"c, 1\",A\n" +
				"1700000000,view,c2,B\n" +
				"1700000002,refund,c2,B\n",
			want: []string{
				"c2 B view 1700000000000",
				"c, 1 A add_to_cart 1700000001500",
			},
			skipped: map[string]int{"unknown_type": 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Load(context.Background(), strings.NewReader(tc.input), "fixture", tc.opts)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if got := flatten(ds); !slices.Equal(got, tc.want) {
				t.Errorf("events:\n got %q\nwant %q", got, tc.want)
			}
			total := 0
			for _, n := range tc.skipped {
				total += n
			}
			if ds.Skipped != total || !maps.Equal(ds.SkippedBy, tc.skipped) {
				t.Errorf("skipped %d %v, want %d %v", ds.Skipped, ds.SkippedBy, total, tc.skipped)
			}
		})
	}
}

// TestLoadCSVSeparator reads a ';'-separated file by column positions,
// without a type column (every event a view) and times in ms.
func TestLoadCSVSeparator(t *testing.T) {
	ds, err := Load(context.Background(), strings.NewReader("u;i;t\nu1;x;5\nu2;y;4\n"), "semi", LoadOptions{
		Format: FormatCSV, Mapping: CSVMapping{User: "0", Item: "i", Ts: "2", Comma: ';'}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := flatten(ds), []string{"u2 y view 4", "u1 x view 5"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLoaderErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		opts  LoadOptions
		input string
		want  string
	}{
		{"unknown format", LoadOptions{Format: "parquet"}, "", `unknown format "parquet"`},
		{"ratings.csv without rating", LoadOptions{Format: FormatMovieLensCSV}, "userId,movieId,timestamp\n", `no column "rating"`},
		{"events.csv without itemid", LoadOptions{Format: FormatRetailRocket}, "timestamp,visitorid,event\n", `no column "itemid"`},
		{"csv mapping names a missing column", LoadOptions{Format: FormatCSV, Mapping: CSVMapping{User: "u", Item: "sku", Ts: "t"}}, "u,i,t\n", `no column "sku"`},
		{"csv without mapping", LoadOptions{Format: FormatCSV}, "u,i,t\n", "map: user, item and ts columns are required"},
	} {
		if _, err := Load(ctx, strings.NewReader(tc.input), "x", tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	big := strings.Repeat("1\t2\t3\t4\n", checkEvery+1)
	if _, err := Load(cancelled, strings.NewReader(big), "x", LoadOptions{Format: FormatMovieLens}); err == nil {
		t.Error("a cancelled context did not stop the loader")
	}
}

func TestParseCSVMapping(t *testing.T) {
	m, err := ParseCSVMapping("user=uid, item=sku,ts=time,type=action", "s")
	if err != nil || m != (CSVMapping{User: "uid", Item: "sku", Ts: "time", Type: "action", TsUnit: "s"}) {
		t.Fatalf("got %+v, %v", m, err)
	}
	for spec, want := range map[string]string{
		"user=a,item=b":          "user, item and ts columns are required",
		"user=a,item=b,ts=c,x=d": `unknown key "x"`,
		"user,item=b,ts=c":       `"user" is not key=column`,
	} {
		if _, err := ParseCSVMapping(spec, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", spec, err, want)
		}
	}
	if _, err := ParseCSVMapping("user=a,item=b,ts=c", "us"); err == nil || !strings.Contains(err.Error(), "ts-unit: must be s or ms") {
		t.Errorf("bad unit: %v", err)
	}
}

func TestDetectFormatAndLoadFile(t *testing.T) {
	dir := t.TempDir()
	for name, want := range map[string]Format{
		"history.jsonl": FormatJSONL, "x.ndjson": FormatJSONL, "u.data": FormatMovieLens,
		"ratings.csv": FormatMovieLensCSV, "events.csv": FormatRetailRocket,
	} {
		if got, err := DetectFormat(filepath.Join(dir, name)); err != nil || got != want {
			t.Errorf("DetectFormat(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := DetectFormat("log.csv"); err == nil {
		t.Error("log.csv: a format was guessed")
	}
	path := filepath.Join(dir, "u.data")
	if err := os.WriteFile(path, []byte("1\t10\t5\t100\n2\t10\t4\t50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := LoadFile(context.Background(), path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Events) != 2 || len(ds.Users) != 2 || len(ds.Items) != 1 || ds.Events[0].TsMs != 50_000 {
		t.Errorf("loaded %s", ds)
	}
	if _, err := LoadFile(context.Background(), filepath.Join(dir, "missing.jsonl"), LoadOptions{}); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestDatasetSplit(t *testing.T) {
	ds := newDataset("split")
	for i, ts := range []int64{1, 2, 3, 3, 3, 4, 5, 6, 7, 8} {
		ds.add("u", "i"+strconv.Itoa(i), 0, ts)
	}
	ds.finish()
	for _, tc := range []struct {
		fraction float64
		want     int
	}{{0, 0}, {0.2, 2}, {0.3, 2}, {0.5, 5}, {0.9, 9}, {1, 10}, {2, 10}, {-1, 0}} {
		if got := ds.SplitIndex(tc.fraction); got != tc.want {
			t.Errorf("SplitIndex(%g) = %d, want %d", tc.fraction, got, tc.want)
		}
	}
	in := ds.Interactions(2, 5)
	if len(in) != 3 || in[0].Item != "i2" || in[0].TsMs != 3 || in[0].User != "u" {
		t.Errorf("Interactions(2, 5) = %+v", in)
	}
}
