package models

import (
	"fmt"
	"math"
	"strconv"

	"github.com/recstream/recstream/schemas"
)

// UserTowerGraph holds everything the built-in stateful user tower is made
// of. BuildUserTower writes it as an ONNX model that honours the contract of
// schemas/model_contract.go.
//
// The graph applies L events one after the other, each as
//
//	state = state * decay[:, l] + type_weights[type[:, l]] * item_embeddings[item[:, l]]
//
// then scores every item as state · item_embeddings^T + item_prior, masks
// the excluded items and index 0, and keeps the top K. Every step is the same
// three IEEE operations (two products and a sum, each rounded), and a padding
// step multiplies by exactly 1 and adds exactly +0, so a user's state does not
// depend on how its events were split across runs.
type UserTowerGraph struct {
	// Dim is D, the width of the state and of the item embeddings. Required.
	Dim int
	// Steps is L, the number of events applied per run. Required.
	Steps int
	// TopK is K, the number of items returned per user. It is capped at the
	// number of item indices (N+1).
	TopK int
	// Batch fixes B, the users per run, for runtimes that need static
	// shapes; the scorer then pads every run to it. 0 leaves B dynamic.
	Batch int
	// ItemEmbeddings is the [N+1, D] table, row-major; row 0 must be zeros.
	ItemEmbeddings []float32
	// TypeWeights is the [T+1] weight per event type code plus one; index 0
	// must be 0.
	TypeWeights []float32
	// ItemPrior is the [N+1] popularity prior added to every score; index 0
	// should be schemas.ModelMaskedScore.
	ItemPrior []float32
	// Metadata is written into the model's metadata_props (for example the
	// model version), readable with any ONNX tool.
	Metadata map[string]string
}

// Validate checks that the parts have consistent shapes.
func (g *UserTowerGraph) Validate() error {
	if g.Dim <= 0 {
		return fmt.Errorf("dim: must be > 0, got %d", g.Dim)
	}
	if g.Steps <= 0 {
		return fmt.Errorf("steps: must be > 0, got %d", g.Steps)
	}
	if g.Batch < 0 {
		return fmt.Errorf("batch: must be >= 0, got %d", g.Batch)
	}
	if g.TopK <= 0 {
		return fmt.Errorf("top_k: must be > 0, got %d", g.TopK)
	}
	if len(g.ItemEmbeddings) == 0 || len(g.ItemEmbeddings)%g.Dim != 0 {
		return fmt.Errorf("item embeddings: %d values is not a whole number of rows of %d", len(g.ItemEmbeddings), g.Dim)
	}
	rows := len(g.ItemEmbeddings) / g.Dim
	if rows < 2 {
		return fmt.Errorf("item embeddings: need at least one item besides padding row 0, got %d rows", rows)
	}
	for _, v := range g.ItemEmbeddings[:g.Dim] {
		if v != 0 || math.Signbit(float64(v)) {
			return fmt.Errorf("item embeddings: row 0 (padding) must be +0")
		}
	}
	if len(g.ItemPrior) != rows {
		return fmt.Errorf("item prior: has %d values, want %d (one per embedding row)", len(g.ItemPrior), rows)
	}
	if len(g.TypeWeights) < 2 {
		return fmt.Errorf("type weights: need index 0 (padding) and at least one type, got %d values", len(g.TypeWeights))
	}
	if g.TypeWeights[0] != 0 {
		return fmt.Errorf("type weights: index 0 (padding) must be 0, got %g", g.TypeWeights[0])
	}
	return nil
}

// Items returns N, the number of items (embedding rows less padding row 0).
func (g *UserTowerGraph) Items() int { return len(g.ItemEmbeddings)/g.Dim - 1 }

// BuildUserTower returns the ONNX model (opset 17, IR version 8) of g.
func BuildUserTower(g *UserTowerGraph) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("build user tower: %w", err)
	}
	rows := int64(g.Items() + 1)
	d := int64(g.Dim)
	k := min(int64(g.TopK), rows)
	b := &GraphWriter{}

	batch := DimParam("B")
	if g.Batch > 0 {
		batch = DimValue(int64(g.Batch))
	}
	b.Input(schemas.ModelInputState, TensorFloat, batch, DimValue(d))
	b.Input(schemas.ModelInputEventItems, TensorInt64, batch, DimValue(int64(g.Steps)))
	b.Input(schemas.ModelInputEventTypes, TensorInt64, batch, DimValue(int64(g.Steps)))
	b.Input(schemas.ModelInputEventDecays, TensorFloat, batch, DimValue(int64(g.Steps)))
	b.Input(schemas.ModelInputExcludeItems, TensorInt64, batch, DimParam("M"))
	b.Output(schemas.ModelOutputNewState, TensorFloat, batch, DimValue(d))
	b.Output(schemas.ModelOutputTopScores, TensorFloat, batch, DimValue(k))
	b.Output(schemas.ModelOutputTopItems, TensorInt64, batch, DimValue(k))

	b.Initializer(floatTensor(schemas.ModelInitItemEmbeddings, []int64{rows, d}, g.ItemEmbeddings))
	b.Initializer(floatTensor(schemas.ModelInitTypeWeights, []int64{int64(len(g.TypeWeights))}, g.TypeWeights))
	b.Initializer(floatTensor(schemas.ModelInitItemPrior, []int64{rows}, g.ItemPrior))
	b.Initializer(int64Tensor("k", []int64{1}, []int64{k}))
	b.Initializer(int64Tensor("axis_last", []int64{1}, []int64{-1}))
	b.Initializer(int64Tensor("axis_1", []int64{1}, []int64{1}))

	// Contributions of every event at once: weight(type) * embedding(item).
	b.Node("Gather", []string{schemas.ModelInitItemEmbeddings, schemas.ModelInputEventItems}, []string{"ev_emb"}, attrInt("axis", 0))
	b.Node("Gather", []string{schemas.ModelInitTypeWeights, schemas.ModelInputEventTypes}, []string{"ev_w"}, attrInt("axis", 0))
	b.Node("Unsqueeze", []string{"ev_w", "axis_last"}, []string{"ev_w3"})
	b.Node("Mul", []string{"ev_emb", "ev_w3"}, []string{"ev_x"})

	// The sequential update, unrolled: one Mul and one Add per step.
	xs := make([]string, g.Steps)
	ds := make([]string, g.Steps)
	for l := range g.Steps {
		xs[l] = "x_" + strconv.Itoa(l)
		ds[l] = "decay_" + strconv.Itoa(l)
	}
	if g.Steps == 1 {
		b.Node("Identity", []string{"ev_x"}, xs)
		b.Node("Identity", []string{schemas.ModelInputEventDecays}, ds)
	} else {
		b.Node("Split", []string{"ev_x"}, xs, attrInt("axis", 1))
		b.Node("Split", []string{schemas.ModelInputEventDecays}, ds, attrInt("axis", 1))
	}
	state := schemas.ModelInputState
	for l := range g.Steps {
		n := strconv.Itoa(l)
		b.Node("Squeeze", []string{xs[l], "axis_1"}, []string{"xs_" + n})
		b.Node("Mul", []string{state, ds[l]}, []string{"decayed_" + n})
		next := "state_" + strconv.Itoa(l+1)
		b.Node("Add", []string{"decayed_" + n, "xs_" + n}, []string{next})
		state = next
	}
	b.Node("Identity", []string{state}, []string{schemas.ModelOutputNewState})

	// Scores, masking and top-K.
	b.Node("Transpose", []string{schemas.ModelInitItemEmbeddings}, []string{"emb_t"}, attrInts("perm", 1, 0))
	b.Node("MatMul", []string{state, "emb_t"}, []string{"dots"})
	b.Node("Add", []string{"dots", schemas.ModelInitItemPrior}, []string{"scores"})
	b.Node("Shape", []string{schemas.ModelInputExcludeItems}, []string{"ex_shape"})
	b.Node("ConstantOfShape", []string{"ex_shape"}, []string{"ex_fill"},
		attrTensor("value", floatTensor("", []int64{1}, []float32{schemas.ModelMaskedScore})))
	b.Node("ScatterElements", []string{"scores", schemas.ModelInputExcludeItems, "ex_fill"}, []string{"masked"}, attrInt("axis", 1))
	b.Node("TopK", []string{"masked", "k"}, []string{schemas.ModelOutputTopScores, schemas.ModelOutputTopItems},
		attrInt("axis", 1), attrInt("largest", 1), attrInt("sorted", 1))

	return b.Model("recstream_user_tower", g.Metadata), nil
}
