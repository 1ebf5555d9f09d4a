package models_test

import (
	"strings"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
)

func TestSequenceModelLoadsAsSequenceContract(t *testing.T) {
	scorertest.OpenRuntime(t)
	for _, tc := range []struct {
		name      string
		history   int
		noExclude bool
		wantH     int
	}{
		{"fixed H with exclude", 12, false, 12},
		{"dynamic H without exclude", 0, true, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := models.LoadModelDir(scorertest.WriteSequenceModel(t, scorertest.SequenceSpec(40, 8, 1, tc.history, tc.noExclude)))
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if m.Contract != schemas.ModelContractSequence || m.History != tc.wantH || m.HasExclude == tc.noExclude ||
				m.TopK != models.DefaultTopK || m.Dim != 0 || m.Steps != -1 || m.Meta.Kind != models.ModelKindSequenceMean {
				t.Fatalf("contract %s H=%d exclude=%v K=%d D=%d L=%d kind %q", m.Contract, m.History, m.HasExclude, m.TopK, m.Dim, m.Steps, m.Meta.Kind)
			}
		})
	}
	tower, err := models.LoadModelDir(scorertest.WriteModel(t, scorertest.Spec(10, 4, 1)))
	if err != nil || tower.Contract != schemas.ModelContractStateful || !tower.HasExclude || tower.History != -1 {
		t.Fatalf("the built-in tower: %+v, %v", tower, err)
	}
}

// TestLoadModelDirChecksSequenceContract refuses sequence graphs that break
// the contract, each error naming the tensor and what was expected.
func TestLoadModelDirChecksSequenceContract(t *testing.T) {
	scorertest.OpenRuntime(t)
	B, H, K, M := models.DimParam("B"), models.DimValue(5), models.DimValue(3), models.DimParam("M")
	hist := scorertest.ValueSpec{Name: schemas.ModelInputItemHistory, Type: models.TensorInt64, Dims: []models.Dim{B, H}}
	excl := scorertest.ValueSpec{Name: schemas.ModelInputExcludeItems, Type: models.TensorInt64, Dims: []models.Dim{B, M}}
	scores := scorertest.ValueSpec{Name: schemas.ModelOutputTopScores, Type: models.TensorFloat, Dims: []models.Dim{B, K}}
	items := scorertest.ValueSpec{Name: schemas.ModelOutputTopItems, Type: models.TensorInt64, Dims: []models.Dim{B, K}}
	// Identity graphs: top_scores from a float input, top_items from an
	// int64 one; the shapes are what is checked.
	scoresF := scorertest.ValueSpec{Name: "scores_in", Type: models.TensorFloat, Dims: []models.Dim{B, K}}
	itemsI := scorertest.ValueSpec{Name: "items_in", Type: models.TensorInt64, Dims: []models.Dim{B, K}}
	for _, tc := range []struct {
		name string
		ins  []scorertest.ValueSpec
		outs []scorertest.ValueSpec
		from []string
		want string
	}{
		{"history float32", []scorertest.ValueSpec{{Name: schemas.ModelInputItemHistory, Type: models.TensorFloat, Dims: []models.Dim{B, models.DimValue(3)}}, excl, itemsI}, []scorertest.ValueSpec{scores, items},
			[]string{schemas.ModelInputItemHistory, "items_in"},
			`input "item_history" is a float32 tensor [-1 3], want an int64 tensor [B, H]`},
		{"missing top_items", []scorertest.ValueSpec{hist, scoresF}, []scorertest.ValueSpec{scores},
			[]string{"scores_in"}, `output "top_items" is missing`},
		{"top_scores int64", []scorertest.ValueSpec{hist, itemsI}, []scorertest.ValueSpec{{Name: schemas.ModelOutputTopScores, Type: models.TensorInt64, Dims: []models.Dim{B, K}}, items},
			[]string{"items_in", "items_in"}, `output "top_scores" is an int64 tensor [-1 3], want a float32 tensor [B, K]`},
		{"K disagrees", []scorertest.ValueSpec{hist, scoresF, {Name: "items_in", Type: models.TensorInt64, Dims: []models.Dim{B, models.DimValue(4)}}},
			[]scorertest.ValueSpec{scores, {Name: schemas.ModelOutputTopItems, Type: models.TensorInt64, Dims: []models.Dim{B, models.DimValue(4)}}},
			[]string{"scores_in", "items_in"}, `output "top_items" has K=4, another tensor has K=3`},
		{"extra input", []scorertest.ValueSpec{hist, scoresF, itemsI}, []scorertest.ValueSpec{scores, items},
			[]string{"scores_in", "items_in"}, "the sequence contract has 1 to 2 (scores_in, items_in not part of it)"},
		{"both contracts", []scorertest.ValueSpec{hist, {Name: schemas.ModelInputState, Type: models.TensorFloat, Dims: []models.Dim{B, models.DimValue(4)}}, scoresF, itemsI},
			[]scorertest.ValueSpec{scores, items}, []string{"scores_in", "items_in"}, `both input "state" (stateful contract) and input "item_history"`},
		{"rank 3 history", []scorertest.ValueSpec{{Name: schemas.ModelInputItemHistory, Type: models.TensorInt64, Dims: []models.Dim{B, H, models.DimValue(2)}}, scoresF, itemsI},
			[]scorertest.ValueSpec{scores, items}, []string{"scores_in", "items_in"}, `input "item_history" has shape [-1 5 2], want [B, H]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := models.LoadModelDir(scorertest.CraftModelDir(t, tc.ins, tc.outs, tc.from))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadModelDir = %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}
