package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedNames lists every metric name recstream's own collectors can
// export, histogram series suffixes included.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := New(NewHealth())
	ch := make(chan *prometheus.Desc, 256)
	(&collector{m: m}).Describe(ch)
	for _, v := range []prometheus.Collector{m.batchRecords, m.stage, m.sinkWrite, m.sinkAttempts} {
		v.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		mm := fq.FindStringSubmatch(d.String())
		if mm == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			names[mm[1]+suffix] = true
		}
	}
	return names
}

// TestDashboardAndAlertsUseExportedMetrics fails when the Grafana dashboard
// or the Prometheus alerts query a recstream metric that does not exist
// (renamed or misspelt), or when an exported metric is on neither.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	names := exportedNames(t)
	used := map[string]bool{}
	ref := regexp.MustCompile(`\brecstream_[a-z_]+`)
	files := map[string]string{
		"dashboard": "../../../../deploy/grafana/recstream-dashboard.json",
		"alerts":    "../../../../deploy/prometheus/alerts.yml",
	}
	for what, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if what == "dashboard" {
			var d struct {
				UID    string `json:"uid"`
				Panels []struct {
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if d.UID == "" || len(d.Panels) < 10 {
				t.Fatalf("%s: uid %q, %d panels", path, d.UID, len(d.Panels))
			}
		}
		for _, n := range ref.FindAllString(string(raw), -1) {
			if !names[n] {
				t.Errorf("%s uses %s, which recstream does not export", path, n)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
		}
	}
	for n := range names {
		if strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count") {
			continue
		}
		if !used[n] && !used[n+"_bucket"] {
			t.Logf("note: %s is on no dashboard panel or alert", n)
		}
	}
}
