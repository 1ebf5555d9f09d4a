package models

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/recstream/recstream/schemas"
)

// ModelKindSequenceMean is the metadata kind of the sequence model written
// by WriteSequenceModelDir.
const ModelKindSequenceMean = "sequence_mean"

// DefaultHistory is H, the items of history a sequence model sees, when
// neither the model nor the configuration fixes it.
const DefaultHistory = 50

// SequenceGraph is a small model honouring the sequence contract
// (schemas.ModelContractSequence): the user vector is the mean of the
// embeddings of the items in item_history (padding left out), every item
// is scored as user · item_embeddings^T + item_prior, index 0 and the
// excluded items are masked, and the top K are returned. It is the simplest
// stand-in for a SASRec network exported from PyTorch, and what the tests
// load; BuildSequenceModel writes it.
type SequenceGraph struct {
	// Dim is D, the width of the item embeddings. Required.
	Dim int
	// History fixes H, the items of history per user; 0 leaves it dynamic
	// (the scorer then uses its history_len).
	History int
	// TopK is K, the items returned per user; capped at N+1. Required.
	TopK int
	// Batch fixes B; 0 leaves it dynamic.
	Batch int
	// ItemEmbeddings is the [N+1, D] table, row-major; row 0 must be zeros.
	ItemEmbeddings []float32
	// ItemPrior is the [N+1] prior added to every score; index 0 should be
	// schemas.ModelMaskedScore.
	ItemPrior []float32
	// NoExclude leaves out the optional exclude_items input: the graph then
	// masks nothing but index 0.
	NoExclude bool
	// Metadata is written into the model's metadata_props.
	Metadata map[string]string
}

// Validate checks that the parts have consistent shapes.
func (g *SequenceGraph) Validate() error {
	switch {
	case g.Dim <= 0:
		return fmt.Errorf("dim: must be > 0, got %d", g.Dim)
	case g.History < 0:
		return fmt.Errorf("history: must be >= 0, got %d", g.History)
	case g.TopK <= 0:
		return fmt.Errorf("top_k: must be > 0, got %d", g.TopK)
	case g.Batch < 0:
		return fmt.Errorf("batch: must be >= 0, got %d", g.Batch)
	case len(g.ItemEmbeddings) == 0 || len(g.ItemEmbeddings)%g.Dim != 0:
		return fmt.Errorf("item embeddings: %d values is not a whole number of rows of %d", len(g.ItemEmbeddings), g.Dim)
	}
	rows := len(g.ItemEmbeddings) / g.Dim
	if rows < 2 {
		return fmt.Errorf("item embeddings: need at least one item besides padding row 0, got %d rows", rows)
	}
	for _, v := range g.ItemEmbeddings[:g.Dim] {
		if v != 0 {
			return errors.New("item embeddings: row 0 (padding) must be zeros")
		}
	}
	if len(g.ItemPrior) != rows {
		return fmt.Errorf("item prior: has %d values, want %d (one per embedding row)", len(g.ItemPrior), rows)
	}
	return nil
}

// BuildSequenceModel returns the ONNX model (opset 17, IR version 8) of g.
func BuildSequenceModel(g *SequenceGraph) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("build sequence model: %w", err)
	}
	rows := int64(len(g.ItemEmbeddings) / g.Dim)
	k := min(int64(g.TopK), rows)
	w := &GraphWriter{}
	batch, hist := DimParam("B"), DimParam("H")
	if g.Batch > 0 {
		batch = DimValue(int64(g.Batch))
	}
	if g.History > 0 {
		hist = DimValue(int64(g.History))
	}
	w.Input(schemas.ModelInputItemHistory, TensorInt64, batch, hist)
	if !g.NoExclude {
		w.Input(schemas.ModelInputExcludeItems, TensorInt64, batch, DimParam("M"))
	}
	w.Output(schemas.ModelOutputTopScores, TensorFloat, batch, DimValue(k))
	w.Output(schemas.ModelOutputTopItems, TensorInt64, batch, DimValue(k))

	w.Initializer(floatTensor(schemas.ModelInitItemEmbeddings, []int64{rows, int64(g.Dim)}, g.ItemEmbeddings))
	w.Initializer(floatTensor(schemas.ModelInitItemPrior, []int64{rows}, g.ItemPrior))
	w.Initializer(int64Tensor("k", []int64{1}, []int64{k}))
	w.Initializer(int64Tensor("axis_1", []int64{1}, []int64{1}))
	w.Initializer(int64Tensor("zero_i64", nil, []int64{0}))
	w.Initializer(floatTensor("one_f", nil, []float32{1}))

	// Mean of the embeddings of the non-padding items: their sum over the
	// count (at least 1, so an empty history gives a zero vector). The sum
	// is a product [B, 1, H] x [B, H, D] by the 0/1 mask, one small product
	// per user; ONNX Runtime's ReduceSum over H took another order of
	// additions when B was 1 than for larger runs, and its Div by a [1, 1]
	// count rounded otherwise than by [B, 1], so a user's scores depended
	// on the size of the run. The count sums small integers: exact.
	w.Node("Gather", []string{schemas.ModelInitItemEmbeddings, schemas.ModelInputItemHistory}, []string{"hist_emb"}, attrInt("axis", 0))
	w.Node("Greater", []string{schemas.ModelInputItemHistory, "zero_i64"}, []string{"is_item"})
	w.Node("Cast", []string{"is_item"}, []string{"is_item_f"}, attrInt("to", TensorFloat))
	w.Node("Unsqueeze", []string{"is_item_f", "axis_1"}, []string{"is_item_3"})
	w.Node("MatMul", []string{"is_item_3", "hist_emb"}, []string{"emb_sum_3"})
	w.Node("Squeeze", []string{"emb_sum_3", "axis_1"}, []string{"emb_sum"})
	w.Node("ReduceSum", []string{"is_item_f", "axis_1"}, []string{"count"}, attrInt("keepdims", 1))
	w.Node("Max", []string{"count", "one_f"}, []string{"count1"})
	w.Node("Reciprocal", []string{"count1"}, []string{"inv_count"})
	w.Node("Mul", []string{"emb_sum", "inv_count"}, []string{"user"})

	w.Node("Transpose", []string{schemas.ModelInitItemEmbeddings}, []string{"emb_t"}, attrInts("perm", 1, 0))
	w.Node("MatMul", []string{"user", "emb_t"}, []string{"dots"})
	w.Node("Add", []string{"dots", schemas.ModelInitItemPrior}, []string{"scores"})
	masked := "scores"
	if !g.NoExclude {
		w.Node("Shape", []string{schemas.ModelInputExcludeItems}, []string{"ex_shape"})
		w.Node("ConstantOfShape", []string{"ex_shape"}, []string{"ex_fill"},
			attrTensor("value", floatTensor("", []int64{1}, []float32{schemas.ModelMaskedScore})))
		w.Node("ScatterElements", []string{"scores", schemas.ModelInputExcludeItems, "ex_fill"}, []string{"masked"}, attrInt("axis", 1))
		masked = "masked"
	}
	w.Node("TopK", []string{masked, "k"}, []string{schemas.ModelOutputTopScores, schemas.ModelOutputTopItems},
		attrInt("axis", 1), attrInt("largest", 1), attrInt("sorted", 1))
	return w.Model("recstream_sequence_mean", g.Metadata), nil
}

// SequenceModelSpec is what WriteSequenceModelDir makes a sequence model
// directory from.
type SequenceModelSpec struct {
	// Version names the model in every record; empty means "sq-" and the
	// first 12 hex digits of model.onnx's SHA-256.
	Version string
	// CreatedAt is recorded in the metadata; zero means now.
	CreatedAt time.Time
	// Items are the item ids; item i (from 0) gets index i+1. Required.
	Items []string
	// Embeddings has one row of D values per item. Required.
	Embeddings [][]float32
	// Counts gives the popularity prior as in ModelSpec; nil means none.
	Counts []int64
	// PriorWeight scales the prior as in ModelSpec (0 = DefaultPriorWeight,
	// negative = none).
	PriorWeight float32
	// History fixes H; 0 leaves it dynamic.
	History int
	// TopK is K; 0 means DefaultTopK.
	TopK int
	// NoExclude leaves out the optional exclude_items input.
	NoExclude bool
}

// WriteSequenceModelDir writes the sequence model of spec into dir (see
// SequenceGraph), with the same rules as WriteModelDir: dir must not exist
// or be empty, and is either complete or absent afterwards.
func WriteSequenceModelDir(dir string, spec SequenceModelSpec) error {
	files, err := buildSequenceFiles(spec)
	if err != nil {
		return fmt.Errorf("write sequence model dir %s: %w", dir, err)
	}
	return writeModelFiles(dir, files)
}

func buildSequenceFiles(spec SequenceModelSpec) ([]modelFile, error) {
	n := len(spec.Items)
	dim, items, emb, err := itemTable(spec.Items, spec.Embeddings, spec.Counts, nil)
	if err != nil {
		return nil, err
	}
	pw := priorWeightOrDefault(spec.PriorWeight)
	topK := cmp.Or(spec.TopK, DefaultTopK)
	model, err := BuildSequenceModel(&SequenceGraph{
		Dim: dim, History: spec.History, TopK: topK,
		ItemEmbeddings: emb, ItemPrior: PopularityPrior(spec.Counts, n, pw),
		NoExclude: spec.NoExclude,
		Metadata:  map[string]string{"kind": "recstream_" + ModelKindSequenceMean},
	})
	if err != nil {
		return nil, err
	}
	return modelDirFiles(model, items, ModelMetadata{
		Version:     spec.Version,
		Kind:        ModelKindSequenceMean,
		CreatedAt:   spec.CreatedAt,
		NumItems:    n,
		TopK:        min(topK, n+1),
		PriorWeight: pw,
	}, "sq-")
}
