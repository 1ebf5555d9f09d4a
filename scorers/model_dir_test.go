package scorers

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
)

func TestWriteLoadModelDir(t *testing.T) {
	openTestRuntime(t)
	spec := testSpec(30, 8, 1)
	spec.Version = ""
	spec.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spec.DataFromMs, spec.DataToMs = 1000, 2000
	// Whatever parameters the trainer records (scorers/training's configs).
	type trainingParams struct {
		Dim  int    `json:"dim"`
		Seed uint64 `json:"seed"`
	}
	spec.Training = trainingParams{Dim: 8, Seed: 42}
	dir := writeTestModel(t, spec)
	m, err := LoadModelDir(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !strings.HasPrefix(m.Meta.Version, "ut-") || len(m.Meta.Version) != 3+12 {
		t.Errorf("derived version %q, want ut-<12 hex>", m.Meta.Version)
	}
	if m.Dim != 8 || m.Steps != DefaultSteps || m.TopK != DefaultTopK || m.Exclude != -1 || m.Batch != -1 {
		t.Errorf("dims D=%d L=%d K=%d M=%d B=%d, want 8 %d %d -1 -1", m.Dim, m.Steps, m.TopK, m.Exclude, m.Batch, DefaultSteps, DefaultTopK)
	}
	if m.Meta.NumItems != 30 || len(m.Items) != 30 || m.Meta.Kind != ModelKindUserTower {
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
	dir2 := writeTestModel(t, spec)
	a, _ := os.ReadFile(filepath.Join(dir, schemas.ModelFileONNX))
	b, _ := os.ReadFile(filepath.Join(dir2, schemas.ModelFileONNX))
	if !bytes.Equal(a, b) {
		t.Error("two writes of one spec gave different model.onnx")
	}
	m2, err := LoadModelDir(dir2)
	if err != nil || m2.Meta.Version != m.Meta.Version {
		t.Errorf("second load: version %q vs %q, err %v", m2.Meta.Version, m.Meta.Version, err)
	}

	if err := WriteModelDir(dir, spec); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("rewriting an existing model dir: %v, want a not-empty error", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteModelDir(empty, spec); err != nil {
		t.Errorf("writing into an empty dir: %v", err)
	}
}

func TestLoadModelDirRefusesTamperedModel(t *testing.T) {
	openTestRuntime(t)
	dir := writeTestModel(t, testSpec(10, 4, 1))
	p := filepath.Join(dir, schemas.ModelFileONNX)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModelDir(dir); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("load of a changed model.onnx: %v, want a SHA-256 error", err)
	}
}

func TestWriteModelDirRejectsBadSpec(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *ModelSpec)
		want   string
	}{
		{"no items", func(s *ModelSpec) { s.Items = nil }, "items: none"},
		{"duplicate", func(s *ModelSpec) { s.Items[1] = s.Items[0] }, "appears twice"},
		{"line break", func(s *ModelSpec) { s.Items[2] = "a\nb" }, "line break"},
		{"rows", func(s *ModelSpec) { s.Embeddings = s.Embeddings[1:] }, "embeddings: 4 rows for 5 items"},
		{"ragged", func(s *ModelSpec) { s.Embeddings[3] = s.Embeddings[3][:2] }, "row 3 has 2 values"},
		{"nan", func(s *ModelSpec) { s.Embeddings[0][0] = float32(nan()) }, "holds NaN"},
		{"counts", func(s *ModelSpec) { s.Counts = s.Counts[:2] }, "counts: 2 values"},
		{"missing weight", func(s *ModelSpec) { s.EventTypes = []string{"view", "like"} }, `no weight for event type "like"`},
		{"tiny weight", func(s *ModelSpec) { s.TypeWeights = map[string]float32{"view": 1e-9}; s.EventTypes = []string{"view"} }, "must be 0 or in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(5, 4, 1)
			tc.change(&spec)
			dir := filepath.Join(t.TempDir(), "m")
			err := WriteModelDir(dir, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteModelDir = %v, want an error containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
				t.Errorf("a failed write left %s behind", dir)
			}
		})
	}
}

// valueSpec is a graph input or output of a hand-made model.
type valueSpec struct {
	name string
	typ  uint64
	dims []dim
}

// craftModelDir writes a model directory around a hand-made graph whose
// outputs are Identity copies of inputs (outputs[i] = Identity(from[i])).
func craftModelDir(t *testing.T, ins, outs []valueSpec, from []string) string {
	t.Helper()
	g := &graphWriter{}
	for _, v := range ins {
		g.input(v.name, v.typ, v.dims...)
	}
	for i, v := range outs {
		g.output(v.name, v.typ, v.dims...)
		g.node("Identity", []string{from[i]}, []string{v.name})
	}
	dir := t.TempDir()
	meta, _ := json.Marshal(ModelMetadata{Version: "crafted", NumItems: 3})
	for name, data := range map[string][]byte{
		schemas.ModelFileONNX:     g.model("crafted", nil),
		schemas.ModelFileItems:    []byte("a\nb\nc\n"),
		schemas.ModelFileMetadata: meta,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadModelDirChecksContract(t *testing.T) {
	openTestRuntime(t)
	B, D, L, K, M := dimParam("B"), dimValue(4), dimValue(2), dimValue(2), dimParam("M")
	baseIns := func() []valueSpec {
		return []valueSpec{
			{schemas.ModelInputState, tensorFloat, []dim{B, D}},
			{schemas.ModelInputEventItems, tensorInt64, []dim{B, L}},
			{schemas.ModelInputEventTypes, tensorInt64, []dim{B, L}},
			{schemas.ModelInputEventDecays, tensorFloat, []dim{B, L}},
			{schemas.ModelInputExcludeItems, tensorInt64, []dim{B, M}},
		}
	}
	baseOuts := func() []valueSpec {
		return []valueSpec{
			{schemas.ModelOutputNewState, tensorFloat, []dim{B, D}},
			{schemas.ModelOutputTopScores, tensorFloat, []dim{B, K}},
			{schemas.ModelOutputTopItems, tensorInt64, []dim{B, K}},
		}
	}
	baseFrom := []string{schemas.ModelInputState, schemas.ModelInputEventDecays, schemas.ModelInputEventItems}

	// The hand-made graph honours the contract: it must load.
	if m, err := LoadModelDir(craftModelDir(t, baseIns(), baseOuts(), baseFrom)); err != nil {
		t.Fatalf("a graph honouring the contract was refused: %v", err)
	} else if m.Dim != 4 || m.Steps != 2 || m.TopK != 2 || m.Exclude != -1 {
		t.Fatalf("dims D=%d L=%d K=%d M=%d", m.Dim, m.Steps, m.TopK, m.Exclude)
	}

	for _, tc := range []struct {
		name   string
		change func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string)
		want   string
	}{
		{"state is int64", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			ins[0].typ, outs[0].typ = tensorInt64, tensorInt64
			return ins, outs, baseFrom
		}, `input "state" is an int64 tensor [-1 4], want a float32 tensor`},
		{"renamed input", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			ins[2].name = "event_kinds"
			return ins, outs, baseFrom
		}, `input "event_types" is missing`},
		{"missing output", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			return ins, outs[:2], baseFrom[:2]
		}, `output "top_items" is missing`},
		{"top_items float", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			outs[2].typ = tensorFloat
			return ins, outs, []string{baseFrom[0], baseFrom[1], schemas.ModelInputEventDecays}
		}, `output "top_items" is a float32 tensor [-1 2], want an int64 tensor`},
		{"dynamic D", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			ins[0].dims = []dim{B, dimParam("D")}
			outs[0].dims = []dim{B, dimParam("D")}
			return ins, outs, baseFrom
		}, "fixed D"},
		{"rank 1 decays", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			ins[3].dims = []dim{B}
			outs[1].dims = []dim{B}
			return ins, outs, baseFrom
		}, `input "event_decays" has shape [-1], want [B, L]`},
		{"extra output", func(ins, outs []valueSpec) ([]valueSpec, []valueSpec, []string) {
			outs = append(outs, valueSpec{"debug", tensorFloat, []dim{B, D}})
			return ins, outs, append(baseFrom, schemas.ModelInputState)
		}, "graph has 4 outputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, outs, from := tc.change(baseIns(), baseOuts())
			_, err := LoadModelDir(craftModelDir(t, ins, outs, from))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadModelDir = %v\nwant an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("not onnx", func(t *testing.T) {
		dir := craftModelDir(t, baseIns(), baseOuts(), baseFrom)
		if err := os.WriteFile(filepath.Join(dir, schemas.ModelFileONNX), []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadModelDir(dir); err == nil || !strings.Contains(err.Error(), "inputs and outputs") {
			t.Fatalf("LoadModelDir of garbage = %v", err)
		}
	})
	t.Run("item count", func(t *testing.T) {
		dir := craftModelDir(t, baseIns(), baseOuts(), baseFrom)
		if err := os.WriteFile(filepath.Join(dir, schemas.ModelFileItems), []byte("a\nb\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadModelDir(dir); err == nil || !strings.Contains(err.Error(), "num_items 3") {
			t.Fatalf("LoadModelDir with 2 items for num_items 3 = %v", err)
		}
	})
}

func nan() float64 { return math.NaN() }
