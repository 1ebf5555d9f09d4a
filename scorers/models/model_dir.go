package models

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/recstream/recstream/schemas"
)

// ModelKindUserTower is the metadata kind of the built-in model.
const ModelKindUserTower = "user_tower"

// Defaults of ModelSpec.
const (
	DefaultTopK        = 20
	DefaultSteps       = 8
	DefaultPriorWeight = 0.05
)

// ModelSpec is what WriteModelDir makes a built-in model directory from:
// usually the output of TrainItem2Vec plus the scoring parameters.
type ModelSpec struct {
	// Version names the model in every record it produces. Empty means
	// "ut-" and the first 12 hex digits of model.onnx's SHA-256, so that the
	// same spec always gets the same version.
	Version string
	// CreatedAt is recorded in the metadata; zero means now.
	CreatedAt time.Time
	// Items are the item ids; item i (from 0) gets index i+1. Required; ids
	// must be unique, non-empty and free of line breaks.
	Items []string
	// Embeddings has one row of Dim values per item. Required.
	Embeddings [][]float32
	// Counts is each item's number of events in the training data, for the
	// popularity prior. Nil means no prior (all zeros).
	Counts []int64
	// EventTypes are the event type names in type-code order. Nil means
	// schemas.DefaultEventTypes().
	EventTypes []string
	// TypeWeights gives the weight of each type in EventTypes. Nil means
	// DefaultTypeWeights(). The scorer may override them (Config.TypeWeights).
	TypeWeights map[string]float32
	// TopK is K, the items per record. 0 means DefaultTopK.
	TopK int
	// Steps is L, the events applied per run. 0 means DefaultSteps.
	Steps int
	// Batch fixes B, the users per run (see UserTowerGraph.Batch). 0, the
	// default, leaves it dynamic.
	Batch int
	// PriorWeight scales the popularity prior: item i's prior is
	// PriorWeight * log(1+count_i) / log(1+max count). 0 means
	// DefaultPriorWeight; a negative value means no prior.
	PriorWeight float32
	// DataFromMs and DataToMs bound the event times of the training data
	// (Unix ms), for the record.
	DataFromMs, DataToMs int64
	// Training is recorded in the metadata as JSON (for example the
	// Item2VecConfig used).
	Training any
}

// ModelMetadata is the content of metadata.json.
type ModelMetadata struct {
	// Version names the model; records carry it as model_version.
	Version string `json:"version"`
	// Kind is ModelKindUserTower for the built-in model; free text for
	// others.
	Kind string `json:"kind,omitempty"`
	// CreatedAt is when the directory was written.
	CreatedAt time.Time `json:"created_at"`
	// Dim is D, the width of the user state.
	Dim int `json:"dim"`
	// NumItems is N, the number of lines of items.txt.
	NumItems int `json:"num_items"`
	// TopK and Steps are K and L of the graph (0 when dynamic).
	TopK  int `json:"top_k"`
	Steps int `json:"steps"`
	// EventTypes and TypeWeights are the type names and weights the model
	// was built with, in type-code order.
	EventTypes  []string  `json:"event_types,omitempty"`
	TypeWeights []float32 `json:"type_weights,omitempty"`
	// PriorWeight scaled the popularity prior.
	PriorWeight float32 `json:"prior_weight"`
	// DataFromMs and DataToMs bound the training data's event times.
	DataFromMs int64 `json:"data_from_ms,omitempty"`
	DataToMs   int64 `json:"data_to_ms,omitempty"`
	// Training holds the training parameters.
	Training json.RawMessage `json:"training,omitempty"`
	// ModelSHA256 is the hex SHA-256 of model.onnx; LoadModelDir checks it
	// when set.
	ModelSHA256 string `json:"model_sha256,omitempty"`
}

// Model is a loaded model directory, checked against the contract.
type Model struct {
	// Dir is the directory it was loaded from.
	Dir string
	// Meta is its metadata.json.
	Meta ModelMetadata
	// Items are the item ids: Items[i] has index i+1.
	Items []string
	// ONNX is the content of model.onnx.
	ONNX []byte
	// Contract is the contract the graph honours, told by its inputs.
	Contract schemas.ModelContract
	// Dim is D of a stateful model (0 for a sequence model). Steps (L),
	// History (H), Exclude (M), TopK (K) and Batch (B) are the graph's
	// fixed dimensions, or -1 where the graph leaves them dynamic or does
	// not have them (L of a sequence model, H of a stateful one).
	Dim, Steps, History, Exclude, TopK, Batch int
	// HasExclude is false for a sequence model without an exclude_items
	// input (the scorer then drops excluded items from its output itself).
	HasExclude bool

	itemIndex map[string]int32
}

// ItemIndex returns the index of item id, or 0 when the model does not know
// it.
func (m *Model) ItemIndex(id string) int32 { return m.itemIndex[id] }

// ItemID returns the id of item index i (1..N); "" for 0 or out of range.
func (m *Model) ItemID(i int64) string {
	if i < 1 || i > int64(len(m.Items)) {
		return ""
	}
	return m.Items[i-1]
}

// ReadModelMetadata reads the metadata.json of the model directory dir,
// without loading or checking the graph (LoadModelDir does both).
func ReadModelMetadata(dir string) (ModelMetadata, error) {
	var meta ModelMetadata
	raw, err := os.ReadFile(filepath.Join(dir, schemas.ModelFileMetadata))
	if err != nil {
		return meta, fmt.Errorf("read model metadata: %w", err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return meta, fmt.Errorf("parse %s of %s: %w", schemas.ModelFileMetadata, dir, err)
	}
	if meta.Version == "" {
		return meta, fmt.Errorf("%s of %s: version is empty", schemas.ModelFileMetadata, dir)
	}
	return meta, nil
}

// LoadModelDir reads a model directory and checks model.onnx against the
// contract it declares by its inputs (schemas/model_contract.go): a graph
// with an item_history input must honour the sequence contract, any other
// the stateful one. Every required input and output must be present with
// its element type and rank, no other may be, and each named dimension must
// agree between the tensors that share it; a stateful model must fix D. A
// Runtime must be open (the check asks ONNX Runtime for the graph's inputs
// and outputs).
func LoadModelDir(dir string) (*Model, error) {
	meta, err := ReadModelMetadata(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	items, err := readItems(filepath.Join(dir, schemas.ModelFileItems))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	if meta.NumItems != 0 && meta.NumItems != len(items) {
		return nil, fmt.Errorf("load model %s: %s says num_items %d, %s has %d", dir, schemas.ModelFileMetadata, meta.NumItems, schemas.ModelFileItems, len(items))
	}
	model, err := os.ReadFile(filepath.Join(dir, schemas.ModelFileONNX))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	if meta.ModelSHA256 != "" {
		sum := sha256.Sum256(model)
		if got := hex.EncodeToString(sum[:]); got != meta.ModelSHA256 {
			return nil, fmt.Errorf("load model %s: %s has SHA-256 %s, metadata says %s", dir, schemas.ModelFileONNX, got, meta.ModelSHA256)
		}
	}
	m := &Model{Dir: dir, Meta: meta, Items: items, ONNX: model}
	if err := m.checkContract(); err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	m.itemIndex = make(map[string]int32, len(items))
	for i, id := range items {
		if _, dup := m.itemIndex[id]; dup {
			return nil, fmt.Errorf("load model %s: %s: item %q appears twice", dir, schemas.ModelFileItems, id)
		}
		m.itemIndex[id] = int32(i + 1)
	}
	return m, nil
}

func readItems(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var items []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			return nil, fmt.Errorf("%s: line %d is empty", path, len(items)+1)
		}
		items = append(items, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no items", path)
	}
	if len(items) >= math.MaxInt32 {
		return nil, fmt.Errorf("%s: %d items is too many", path, len(items))
	}
	return items, nil
}

// checkContract asks ONNX Runtime for the graph's inputs and outputs and
// compares them with the contract they declare; it fills the fixed
// dimensions. Every problem found is listed, each naming the tensor and
// what was expected.
func (m *Model) checkContract() error {
	if !ort.IsInitialized() {
		return errors.New("check model contract: ONNX Runtime is not initialised (open a Runtime first)")
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(m.ONNX)
	if err != nil {
		return fmt.Errorf("read %s inputs and outputs: %w", schemas.ModelFileONNX, err)
	}
	contract, err := detectContract(ins)
	if err != nil {
		return fmt.Errorf("%s does not honour the model contract (see schemas/MODEL.md): %w", schemas.ModelFileONNX, err)
	}
	dims := map[string]int64{}
	present := map[string]bool{}
	var problems []string
	check := func(kind string, want []schemas.ModelTensor, got []ort.InputOutputInfo) {
		byName := make(map[string]ort.InputOutputInfo, len(got))
		for _, g := range got {
			byName[g.Name] = g
		}
		required := 0
		for _, w := range want {
			if !w.Optional {
				required++
			}
			g, ok := byName[w.Name]
			if !ok {
				if !w.Optional {
					problems = append(problems, fmt.Sprintf("%s %q is missing", kind, w.Name))
				}
				continue
			}
			present[w.Name] = true
			if g.OrtValueType != ort.ONNXTypeTensor || !kindMatches(w.Kind, g.DataType) {
				want := "a float32"
				if w.Kind == schemas.ModelInt64 {
					want = "an int64"
				}
				problems = append(problems, fmt.Sprintf("%s %q is %s, want %s tensor [%s, %s]", kind, w.Name, describeValue(g), want, w.Dims[0], w.Dims[1]))
				continue
			}
			if len(g.Dimensions) != 2 {
				problems = append(problems, fmt.Sprintf("%s %q has shape %v, want [%s, %s]", kind, w.Name, g.Dimensions, w.Dims[0], w.Dims[1]))
				continue
			}
			for i, name := range w.Dims {
				v := g.Dimensions[i]
				if v < 0 {
					continue
				}
				if v == 0 {
					problems = append(problems, fmt.Sprintf("%s %q has %s=0, want a positive or dynamic size", kind, w.Name, name))
					continue
				}
				if prev, ok := dims[name]; ok && prev != v {
					problems = append(problems, fmt.Sprintf("%s %q has %s=%d, another tensor has %s=%d", kind, w.Name, name, v, name, prev))
					continue
				}
				dims[name] = v
			}
		}
		var extra, names []string
		for _, g := range got {
			names = append(names, g.Name)
			if !slices.ContainsFunc(want, func(w schemas.ModelTensor) bool { return w.Name == g.Name }) {
				extra = append(extra, g.Name)
			}
		}
		if len(extra) > 0 {
			expect := fmt.Sprintf("%d", required)
			if required != len(want) {
				expect = fmt.Sprintf("%d to %d", required, len(want))
			}
			problems = append(problems, fmt.Sprintf("graph has %d %ss %v, the %s contract has %s (%s not part of it)",
				len(got), kind, names, contract, expect, strings.Join(extra, ", ")))
		}
	}
	check("input", schemas.ModelContractInputs(contract), ins)
	check("output", schemas.ModelContractOutputs(contract), outs)
	if _, ok := dims["D"]; !ok && contract == schemas.ModelContractStateful && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("input %q must have a fixed D (its second dimension)", schemas.ModelInputState))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s does not honour the %s model contract (see schemas/MODEL.md): %s", schemas.ModelFileONNX, contract, strings.Join(problems, "; "))
	}
	get := func(name string) int {
		if v, ok := dims[name]; ok {
			return int(v)
		}
		return -1
	}
	m.Contract = contract
	m.Dim, m.Steps, m.History, m.Exclude, m.TopK, m.Batch = max(get("D"), 0), get("L"), get("H"), get("M"), get("K"), get("B")
	m.HasExclude = present[schemas.ModelInputExcludeItems]
	if m.Meta.Dim != 0 && contract == schemas.ModelContractStateful && m.Meta.Dim != m.Dim {
		return fmt.Errorf("%s says dim %d, the graph has D=%d", schemas.ModelFileMetadata, m.Meta.Dim, m.Dim)
	}
	return nil
}

// detectContract tells the contract a graph means to honour by its inputs.
func detectContract(ins []ort.InputOutputInfo) (schemas.ModelContract, error) {
	has := func(name string) bool {
		return slices.ContainsFunc(ins, func(g ort.InputOutputInfo) bool { return g.Name == name })
	}
	switch state, history := has(schemas.ModelInputState), has(schemas.ModelInputItemHistory); {
	case state && history:
		return "", fmt.Errorf("graph has both input %q (stateful contract) and input %q (sequence contract); a model honours one of them",
			schemas.ModelInputState, schemas.ModelInputItemHistory)
	case history:
		return schemas.ModelContractSequence, nil
	default:
		return schemas.ModelContractStateful, nil
	}
}

// describeValue names what a graph input or output is, for errors.
func describeValue(g ort.InputOutputInfo) string {
	if g.OrtValueType != ort.ONNXTypeTensor {
		return "a " + g.OrtValueType.String()
	}
	elem := "an unsupported"
	switch g.DataType {
	case ort.TensorElementDataTypeFloat:
		elem = "a float32"
	case ort.TensorElementDataTypeInt64:
		elem = "an int64"
	case ort.TensorElementDataTypeInt32:
		elem = "an int32"
	case ort.TensorElementDataTypeDouble:
		elem = "a float64"
	}
	return fmt.Sprintf("%s tensor %v", elem, []int64(g.Dimensions))
}

func kindMatches(k schemas.ModelTensorKind, t ort.TensorElementDataType) bool {
	switch k {
	case schemas.ModelFloat32:
		return t == ort.TensorElementDataTypeFloat
	case schemas.ModelInt64:
		return t == ort.TensorElementDataTypeInt64
	}
	return false
}
