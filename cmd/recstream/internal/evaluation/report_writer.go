package evaluation

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// WriteTable writes rep as a table for people: what was scored, then one
// line per recommender with HR, NDCG and MRR at K and the hits.
func WriteTable(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "%s\n", rep.Dataset)
	fmt.Fprintf(w, "scored %d events of %d (%s to %s) after a warm-up of %d; skipped %d without item, %d of cold users, %d repeats of the previous item",
		rep.Scored, rep.Events-rep.WarmupEvents, formatMs(rep.EvalFromMs), formatMs(rep.EvalToMs), rep.WarmupEvents,
		rep.SkippedNoItem, rep.SkippedColdUser, rep.SkippedRepeat)
	if rep.SkippedSeen > 0 {
		fmt.Fprintf(w, ", %d of items seen before", rep.SkippedSeen)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "recommender\tHR@%d\t(95%% CI)\tNDCG@%d\t(95%% CI)\tMRR@%d\tcoverage\tcand. recall\thits\t\n", rep.K, rep.K, rep.K)
	for _, r := range rep.Results {
		recall := "-"
		if r.CandidateRecall >= 0 {
			recall = fmt.Sprintf("%.4f", r.CandidateRecall)
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f-%.4f\t%.4f\t%.4f-%.4f\t%.4f\t%.4f\t%s\t%d\t\n", r.Name, r.HR, r.HRInterval.Low, r.HRInterval.High,
			r.NDCG, r.NDCGInterval.Low, r.NDCGInterval.High, r.MRR, r.Coverage, recall, r.Hits)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	fmt.Fprintf(w, "replay took %.1fs\n", rep.Seconds)
	return nil
}

// WriteJSON writes rep to path as indented JSON.
func WriteJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// Result returns the result named name, or nil.
func (r *Report) Result(name string) *Result {
	for i := range r.Results {
		if r.Results[i].Name == name {
			return &r.Results[i]
		}
	}
	return nil
}

// formatMs formats Unix ms as RFC 3339 (UTC, seconds).
func formatMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
