package scorers

import (
	"bufio"
	"bytes"
	"cmp"
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

// DefaultTypeWeights returns the weight of each default event type: how
// much one event of that type moves the user's state towards the item.
func DefaultTypeWeights() map[string]float32 {
	return map[string]float32{
		"view":        1,
		"click":       2,
		"add_to_cart": 4,
		"purchase":    8,
		"search":      0.5,
	}
}

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

// WriteModelDir writes the built-in model of spec into dir, which must not
// exist yet or be empty (a model directory is never changed once written:
// a new model is a new directory). It writes into a temporary sibling and
// renames it, so dir is either complete or absent.
func WriteModelDir(dir string, spec ModelSpec) error {
	files, err := buildModelFiles(spec)
	if err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	return writeModelFiles(dir, files)
}

// writeModelFiles writes files into dir through a temporary sibling renamed
// into place, so dir is either complete or absent.
func writeModelFiles(dir string, files []modelFile) error {
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) > 0 {
			return fmt.Errorf("write model dir %s: directory exists and is not empty", dir)
		}
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("write model dir %s: %w", dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := writeFileSync(filepath.Join(tmp, f.name), f.data); err != nil {
			return fmt.Errorf("write model dir %s: %w", dir, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// itemTable checks a model's item ids, embeddings and counts, and returns
// the embedding width, items.txt, and the embedding table with its padding
// row 0 (all zeros) first; transform, when set, maps every value.
func itemTable(ids []string, embeddings [][]float32, counts []int64, transform func(float32) float32) (dim int, itemsTxt []byte, emb []float32, err error) {
	n := len(ids)
	if n == 0 {
		return 0, nil, nil, errors.New("items: none given")
	}
	if len(embeddings) != n {
		return 0, nil, nil, fmt.Errorf("embeddings: %d rows for %d items", len(embeddings), n)
	}
	if counts != nil && len(counts) != n {
		return 0, nil, nil, fmt.Errorf("counts: %d values for %d items", len(counts), n)
	}
	dim = len(embeddings[0])
	if dim == 0 {
		return 0, nil, nil, errors.New("embeddings: rows are empty")
	}
	seen := make(map[string]struct{}, n)
	var items bytes.Buffer
	emb = make([]float32, (n+1)*dim)
	for i, id := range ids {
		if id == "" || strings.ContainsAny(id, "\r\n") {
			return 0, nil, nil, fmt.Errorf("items: id %d (%q) is empty or holds a line break", i, id)
		}
		if _, dup := seen[id]; dup {
			return 0, nil, nil, fmt.Errorf("items: id %q appears twice", id)
		}
		seen[id] = struct{}{}
		items.WriteString(id)
		items.WriteByte('\n')
		row := embeddings[i]
		if len(row) != dim {
			return 0, nil, nil, fmt.Errorf("embeddings: row %d has %d values, want %d", i, len(row), dim)
		}
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, nil, nil, fmt.Errorf("embeddings: row %d holds %g", i, v)
			}
			if transform != nil {
				v = transform(v)
			}
			emb[(i+1)*dim+j] = v
		}
	}
	return dim, items.Bytes(), emb, nil
}

// priorWeightOrDefault reads ModelSpec.PriorWeight's convention: 0 means
// the default, a negative value no prior.
func priorWeightOrDefault(w float32) float32 {
	switch {
	case w == 0:
		return DefaultPriorWeight
	case w < 0:
		return 0
	}
	return w
}

type modelFile struct {
	name string
	data []byte
}

// buildModelFiles checks spec and returns the three files of its directory.
func buildModelFiles(spec ModelSpec) ([]modelFile, error) {
	n := len(spec.Items)
	dim, items, emb, err := itemTable(spec.Items, spec.Embeddings, spec.Counts, flushTiny)
	if err != nil {
		return nil, err
	}
	types := spec.EventTypes
	if types == nil {
		types = schemas.DefaultEventTypes()
	}
	weightsByName := spec.TypeWeights
	if weightsByName == nil {
		weightsByName = DefaultTypeWeights()
	}
	typeWeights, err := typeWeightVector(types, weightsByName)
	if err != nil {
		return nil, err
	}
	topK := cmp.Or(spec.TopK, DefaultTopK)
	steps := cmp.Or(spec.Steps, DefaultSteps)
	priorWeight := priorWeightOrDefault(spec.PriorWeight)

	prior := popularityPrior(spec.Counts, n, priorWeight)
	g := &UserTowerGraph{
		Dim:            dim,
		Steps:          steps,
		TopK:           topK,
		Batch:          spec.Batch,
		ItemEmbeddings: emb,
		TypeWeights:    typeWeights,
		ItemPrior:      prior,
		Metadata:       map[string]string{"kind": "recstream_" + ModelKindUserTower},
	}
	model, err := BuildUserTower(g)
	if err != nil {
		return nil, err
	}
	meta := ModelMetadata{
		Version:     spec.Version,
		Kind:        ModelKindUserTower,
		CreatedAt:   spec.CreatedAt,
		Dim:         dim,
		NumItems:    n,
		TopK:        min(topK, n+1),
		Steps:       steps,
		EventTypes:  types,
		TypeWeights: typeWeights[1:],
		PriorWeight: priorWeight,
		DataFromMs:  spec.DataFromMs,
		DataToMs:    spec.DataToMs,
	}
	if spec.Training != nil {
		tr, err := json.Marshal(spec.Training)
		if err != nil {
			return nil, fmt.Errorf("training parameters: %w", err)
		}
		meta.Training = tr
	}
	return modelDirFiles(model, items, meta, "ut-")
}

// modelDirFiles completes meta for the graph model — its checksum, a
// version derived from it ("ut-" or "sq-" and 12 hex digits) unless one is
// given, the creation time unless given — and returns a model directory's
// files: the one place their layout is written.
func modelDirFiles(model, items []byte, meta ModelMetadata, versionPrefix string) ([]modelFile, error) {
	sum := sha256.Sum256(model)
	meta.ModelSHA256 = hex.EncodeToString(sum[:])
	if meta.Version == "" {
		meta.Version = versionPrefix + hex.EncodeToString(sum[:6])
	}
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = time.Now()
	}
	meta.CreatedAt = meta.CreatedAt.UTC()
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return []modelFile{
		{schemas.ModelFileONNX, model},
		{schemas.ModelFileItems, items},
		{schemas.ModelFileMetadata, append(metaJSON, '\n')},
	}, nil
}

// typeWeightVector returns [T+1] weights: 0 for padding, then the weight of
// each type name in code order.
func typeWeightVector(types []string, weights map[string]float32) ([]float32, error) {
	if len(types) == 0 {
		return nil, errors.New("event_types: none given")
	}
	v := make([]float32, len(types)+1)
	for i, name := range types {
		w, ok := weights[name]
		if !ok {
			return nil, fmt.Errorf("type_weights: no weight for event type %q", name)
		}
		if err := checkTypeWeight(name, w); err != nil {
			return nil, err
		}
		v[i+1] = w
	}
	return v, nil
}

// minTypeWeight keeps weight * embedding away from underflow: a product that
// rounds to -0 would break the bit-exact equivalence of a padding step.
const minTypeWeight = 1e-6

func checkTypeWeight(name string, w float32) error {
	if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) || w < 0 || (w > 0 && w < minTypeWeight) || w > 1e6 {
		return fmt.Errorf("type_weights: weight of %q must be 0 or in [%g, 1e6], got %g", name, minTypeWeight, w)
	}
	return nil
}

// flushTiny maps values too small to matter, and -0, to +0. With every
// embedding value either +0 or at least 1e-20 in magnitude, weight *
// embedding never underflows to -0 (see UserTowerGraph).
func flushTiny(v float32) float32 {
	if v > -1e-20 && v < 1e-20 {
		return 0
	}
	return v
}

// popularityPrior returns [n+1] priors: ModelMaskedScore for index 0, then
// weight * log(1+count) / log(1+max count).
func popularityPrior(counts []int64, n int, weight float32) []float32 {
	prior := make([]float32, n+1)
	prior[0] = schemas.ModelMaskedScore
	var maxCount int64
	for _, c := range counts {
		maxCount = max(maxCount, c)
	}
	if maxCount == 0 || weight == 0 {
		return prior
	}
	norm := math.Log1p(float64(maxCount))
	for i, c := range counts {
		if c > 0 {
			prior[i+1] = float32(float64(weight) * math.Log1p(float64(c)) / norm)
		}
	}
	return prior
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
	metaJSON, err := os.ReadFile(filepath.Join(dir, schemas.ModelFileMetadata))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	var meta ModelMetadata
	if err := json.Unmarshal(metaJSON, &meta); err != nil {
		return nil, fmt.Errorf("load model %s: parse %s: %w", dir, schemas.ModelFileMetadata, err)
	}
	if meta.Version == "" {
		return nil, fmt.Errorf("load model %s: %s: version is empty", dir, schemas.ModelFileMetadata)
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
