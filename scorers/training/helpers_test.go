package training

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/models"
)

// fanTopItems writes spec as a model, scores one user who viewed the first
// four items of cluster c2 with the real scorer (ONNX Runtime), and returns
// that user's recommended items: trained embeddings must work in the tower.
func fanTopItems(t *testing.T, spec models.ModelSpec) []string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := models.WriteModelDir(dir, spec); err != nil {
		t.Fatal(err)
	}
	s, err := scorers.NewScorer(scorers.Config{Recommender: scorers.RecommenderModel, ModelDir: dir}, nil)
	if err != nil {
		t.Fatalf("new scorer (run make setup if the ONNX Runtime library is missing): %v", err)
	}
	defer s.Close()
	b := schemas.NewEventBuilder(nil)
	for i := range 4 {
		ev := schemas.Event{EventID: fmt.Appendf(nil, "e%d", i), UserID: []byte("fan"),
			ItemID: fmt.Appendf(nil, "c2-item%02d", i), Type: 0 /* view */, TsMs: int64(1000 + i)}
		b.Append(&ev, 0, int64(i), int64(1005+i))
	}
	batch := &schemas.EventBatch{Topic: "events", Events: b.NewRecord(), Records: 4}
	b.Release()
	defer batch.Release()
	out, err := s.Score(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.Recs.NumRows() != 1 {
		t.Fatalf("%d records for one user, want 1", out.Recs.NumRows())
	}
	return schemas.RecRows(out.Recs).Row(0).Items
}
