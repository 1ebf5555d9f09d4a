package models_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
)

func TestWriteLoadModelDir(t *testing.T) {
	scorertest.OpenRuntime(t)
	spec := scorertest.Spec(30, 8, 1)
	spec.Version = ""
	spec.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spec.DataFromMs, spec.DataToMs = 1000, 2000
	// Whatever parameters the trainer records (scorers/training's configs).
	type trainingParams struct {
		Dim  int    `json:"dim"`
		Seed uint64 `json:"seed"`
	}
	spec.Training = trainingParams{Dim: 8, Seed: 42}
	dir := scorertest.WriteModel(t, spec)
	m, err := models.LoadModelDir(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !strings.HasPrefix(m.Meta.Version, "ut-") || len(m.Meta.Version) != 3+12 {
		t.Errorf("derived version %q, want ut-<12 hex>", m.Meta.Version)
	}
	if m.Dim != 8 || m.Steps != models.DefaultSteps || m.TopK != models.DefaultTopK || m.Exclude != -1 || m.Batch != -1 {
		t.Errorf("dims D=%d L=%d K=%d M=%d B=%d, want 8 %d %d -1 -1", m.Dim, m.Steps, m.TopK, m.Exclude, m.Batch, models.DefaultSteps, models.DefaultTopK)
	}
	if m.Meta.NumItems != 30 || len(m.Items) != 30 || m.Meta.Kind != models.ModelKindUserTower {
		t.Errorf("metadata %+v, %d items", m.Meta, len(m.Items))
	}
	if !m.Meta.CreatedAt.Equal(spec.CreatedAt) || m.Meta.DataFromMs != 1000 || m.Meta.DataToMs != 2000 {
		t.Errorf("metadata times %v %d %d", m.Meta.CreatedAt, m.Meta.DataFromMs, m.Meta.DataToMs)
	}
	var tr trainingParams
	if err := json.Unmarshal(m.Meta.Training, &tr); err != nil || tr.Seed != 42 {
		t.Errorf("training parameters %s: %v", m.Meta.Training, err)
	}
	if got := m.ItemIndex("i0007"); got != 8 {
		t.Errorf("ItemIndex(i0007) = %d, want 8", got)
	}
	if m.ItemIndex("nope") != 0 || m.ItemID(0) != "" || m.ItemID(31) != "" || m.ItemID(8) != "i0007" {
		t.Error("unknown items must map to index 0 and back to an empty id")
	}

	// The same spec gives the same bytes and version: a model is content.
	dir2 := scorertest.WriteModel(t, spec)
	a, _ := os.ReadFile(filepath.Join(dir, schemas.ModelFileONNX))
	b, _ := os.ReadFile(filepath.Join(dir2, schemas.ModelFileONNX))
	if !bytes.Equal(a, b) {
		t.Error("two writes of one spec gave different model.onnx")
	}
	m2, err := models.LoadModelDir(dir2)
	if err != nil || m2.Meta.Version != m.Meta.Version {
		t.Errorf("second load: version %q vs %q, err %v", m2.Meta.Version, m.Meta.Version, err)
	}

	if err := models.WriteModelDir(dir, spec); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("rewriting an existing model dir: %v, want a not-empty error", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := models.WriteModelDir(empty, spec); err != nil {
		t.Errorf("writing into an empty dir: %v", err)
	}
}

func TestLoadModelDirRefusesTamperedModel(t *testing.T) {
	scorertest.OpenRuntime(t)
	dir := scorertest.WriteModel(t, scorertest.Spec(10, 4, 1))
	p := filepath.Join(dir, schemas.ModelFileONNX)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := models.LoadModelDir(dir); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("load of a changed model.onnx: %v, want a SHA-256 error", err)
	}
}

func TestWriteModelDirRejectsBadSpec(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *models.ModelSpec)
		want   string
	}{
		{"no items", func(s *models.ModelSpec) { s.Items = nil }, "items: none"},
		{"duplicate", func(s *models.ModelSpec) { s.Items[1] = s.Items[0] }, "appears twice"},
		{"line break", func(s *models.ModelSpec) { s.Items[2] = "a\nb" }, "line break"},
		{"rows", func(s *models.ModelSpec) { s.Embeddings = s.Embeddings[1:] }, "embeddings: 4 rows for 5 items"},
		{"ragged", func(s *models.ModelSpec) { s.Embeddings[3] = s.Embeddings[3][:2] }, "row 3 has 2 values"},
		{"nan", func(s *models.ModelSpec) { s.Embeddings[0][0] = float32(nan()) }, "holds NaN"},
		{"counts", func(s *models.ModelSpec) { s.Counts = s.Counts[:2] }, "counts: 2 values"},
		{"missing weight", func(s *models.ModelSpec) { s.EventTypes = []string{"view", "like"} }, `no weight for event type "like"`},
		{"tiny weight", func(s *models.ModelSpec) {
			s.TypeWeights = map[string]float32{"view": 1e-9}
			s.EventTypes = []string{"view"}
		}, "must be 0 or in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := scorertest.Spec(5, 4, 1)
			tc.change(&spec)
			dir := filepath.Join(t.TempDir(), "m")
			err := models.WriteModelDir(dir, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteModelDir = %v, want an error containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
				t.Errorf("a failed write left %s behind", dir)
			}
		})
	}
}

func TestLoadModelDirChecksContract(t *testing.T) {
	scorertest.OpenRuntime(t)
	B, D, L, K, M := models.DimParam("B"), models.DimValue(4), models.DimValue(2), models.DimValue(2), models.DimParam("M")
	baseIns := func() []scorertest.ValueSpec {
		return []scorertest.ValueSpec{
			{Name: schemas.ModelInputState, Type: models.TensorFloat, Dims: []models.Dim{B, D}},
			{Name: schemas.ModelInputEventItems, Type: models.TensorInt64, Dims: []models.Dim{B, L}},
			{Name: schemas.ModelInputEventTypes, Type: models.TensorInt64, Dims: []models.Dim{B, L}},
			{Name: schemas.ModelInputEventDecays, Type: models.TensorFloat, Dims: []models.Dim{B, L}},
			{Name: schemas.ModelInputExcludeItems, Type: models.TensorInt64, Dims: []models.Dim{B, M}},
		}
	}
	baseOuts := func() []scorertest.ValueSpec {
		return []scorertest.ValueSpec{
			{Name: schemas.ModelOutputNewState, Type: models.TensorFloat, Dims: []models.Dim{B, D}},
			{Name: schemas.ModelOutputTopScores, Type: models.TensorFloat, Dims: []models.Dim{B, K}},
			{Name: schemas.ModelOutputTopItems, Type: models.TensorInt64, Dims: []models.Dim{B, K}},
		}
	}
	baseFrom := []string{schemas.ModelInputState, schemas.ModelInputEventDecays, schemas.ModelInputEventItems}

	// The hand-made graph honours the contract: it must load.
	if m, err := models.LoadModelDir(scorertest.CraftModelDir(t, baseIns(), baseOuts(), baseFrom)); err != nil {
		t.Fatalf("a graph honouring the contract was refused: %v", err)
	} else if m.Dim != 4 || m.Steps != 2 || m.TopK != 2 || m.Exclude != -1 {
		t.Fatalf("dims D=%d L=%d K=%d M=%d", m.Dim, m.Steps, m.TopK, m.Exclude)
	}

	for _, tc := range []struct {
		name   string
		change func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string)
		want   string
	}{
		{"state is int64", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			ins[0].Type, outs[0].Type = models.TensorInt64, models.TensorInt64
			return ins, outs, baseFrom
		}, `input "state" is an int64 tensor [-1 4], want a float32 tensor`},
		{"renamed input", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			ins[2].Name = "event_kinds"
			return ins, outs, baseFrom
		}, `input "event_types" is missing`},
		{"missing output", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			return ins, outs[:2], baseFrom[:2]
		}, `output "top_items" is missing`},
		{"top_items float", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			outs[2].Type = models.TensorFloat
			return ins, outs, []string{baseFrom[0], baseFrom[1], schemas.ModelInputEventDecays}
		}, `output "top_items" is a float32 tensor [-1 2], want an int64 tensor`},
		{"dynamic D", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			ins[0].Dims = []models.Dim{B, models.DimParam("D")}
			outs[0].Dims = []models.Dim{B, models.DimParam("D")}
			return ins, outs, baseFrom
		}, "fixed D"},
		{"rank 1 decays", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			ins[3].Dims = []models.Dim{B}
			outs[1].Dims = []models.Dim{B}
			return ins, outs, baseFrom
		}, `input "event_decays" has shape [-1], want [B, L]`},
		{"extra output", func(ins, outs []scorertest.ValueSpec) ([]scorertest.ValueSpec, []scorertest.ValueSpec, []string) {
			outs = append(outs, scorertest.ValueSpec{Name: "debug", Type: models.TensorFloat, Dims: []models.Dim{B, D}})
			return ins, outs, append(baseFrom, schemas.ModelInputState)
		}, "graph has 4 outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, outs, from := tc.change(baseIns(), baseOuts())
			_, err := models.LoadModelDir(scorertest.CraftModelDir(t, ins, outs, from))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadModelDir = %v\nwant an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("not onnx", func(t *testing.T) {
		dir := scorertest.CraftModelDir(t, baseIns(), baseOuts(), baseFrom)
		if err := os.WriteFile(filepath.Join(dir, schemas.ModelFileONNX), []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := models.LoadModelDir(dir); err == nil || !strings.Contains(err.Error(), "inputs and outputs") {
			t.Fatalf("LoadModelDir of garbage = %v", err)
		}
	})
	t.Run("item count", func(t *testing.T) {
		dir := scorertest.CraftModelDir(t, baseIns(), baseOuts(), baseFrom)
		if err := os.WriteFile(filepath.Join(dir, schemas.ModelFileItems), []byte("a\nb\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := models.LoadModelDir(dir); err == nil || !strings.Contains(err.Error(), "num_items 3") {
			t.Fatalf("LoadModelDir with 2 items for num_items 3 = %v", err)
		}
	})
}

func nan() float64 { return math.NaN() }
