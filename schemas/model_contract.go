package schemas

// The model contract: the names, element types and shapes of the inputs and
// outputs an ONNX model must have for the scorer to run it. MODEL.md explains
// each one for people who export a model from elsewhere (a GRU4Rec or SASRec
// network from PyTorch, for example).
//
// There are two contracts (ModelContract): a stateful model carries a user
// state from run to run (state in, new_state out: the built-in user tower, a
// GRU); a sequence model sees the user's last H item indices each run (a
// SASRec export) and keeps no state of its own.
//
// Dimensions: B users per run, D state width, L event steps per run, H items
// of history per user, M excluded items per user, K recommended items per
// user, N items (the item index space is 0..N, index 0 meaning padding or an
// unknown item).
const (
	// ModelInputState is the users' states before the run: float32 [B, D].
	// A user seen for the first time has an all-zero state.
	ModelInputState = "state"
	// ModelInputEventItems holds each user's next L events' item indices:
	// int64 [B, L]. Line i of items.txt is index i; 0 is padding or an item
	// unknown to the model.
	ModelInputEventItems = "event_items"
	// ModelInputEventTypes holds the events' type codes plus one: int64
	// [B, L]. 0 is padding (an event that must contribute nothing).
	ModelInputEventTypes = "event_types"
	// ModelInputEventDecays holds the factor each event multiplies the state
	// by before it is applied: float32 [B, L], in [0, 1]; exactly 1 for
	// padding. The scorer computes it as 2^(-dt/half_life) from the time
	// since the user's previous event.
	ModelInputEventDecays = "event_decays"
	// ModelInputExcludeItems lists item indices that must not be
	// recommended to the user (items already bought): int64 [B, M]; 0 is
	// padding. Required by the stateful contract, optional in the sequence
	// contract.
	ModelInputExcludeItems = "exclude_items"
	// ModelInputItemHistory is a sequence model's input: each user's last H
	// item indices, int64 [B, H], most recent last, left-padded with 0.
	ModelInputItemHistory = "item_history"

	// ModelOutputNewState is the users' states after the run: float32
	// [B, D]. It is fed back as ModelInputState on the user's next run.
	ModelOutputNewState = "new_state"
	// ModelOutputTopScores holds the best K scores, best first: float32
	// [B, K]. A score <= ModelMaskedScore marks an item that must not be
	// shown (excluded or padding); the scorer drops such entries.
	ModelOutputTopScores = "top_scores"
	// ModelOutputTopItems holds the item indices of ModelOutputTopScores:
	// int64 [B, K].
	ModelOutputTopItems = "top_items"

	// ModelInitItemEmbeddings is the built-in model's item embedding table,
	// float32 [N+1, D]; row 0 is all zeros.
	ModelInitItemEmbeddings = "item_embeddings"
	// ModelInitTypeWeights is the built-in model's weight per event type,
	// float32 [T+1]; index 0 (padding) is 0. The scorer replaces it with the
	// weights of its configuration when the model has it.
	ModelInitTypeWeights = "type_weights"
	// ModelInitItemPrior is the built-in model's popularity prior added to
	// every score, float32 [N+1]; index 0 is ModelMaskedScore so that
	// padding is never recommended.
	ModelInitItemPrior = "item_prior"

	// ModelMaskedScore is the score given to excluded items and to index 0.
	// Any score at or below it is not a recommendation.
	ModelMaskedScore = float32(-1e9)

	// ModelOpsetVersion and ModelIRVersion are those of the built-in model.
	// ONNX Runtime 1.24 accepts models up to much newer versions.
	ModelOpsetVersion = 17
	ModelIRVersion    = 8
)

// Files of a model directory.
const (
	// ModelFileONNX is the ONNX graph honouring the contract.
	ModelFileONNX = "model.onnx"
	// ModelFileItems lists the item ids, one per line: line i (from 1) is
	// item index i.
	ModelFileItems = "items.txt"
	// ModelFileMetadata is a JSON document describing the model (version,
	// dimensions, training data range and parameters).
	ModelFileMetadata = "metadata.json"
	// ModelFileCurrent is the file of a models directory (a registry of
	// versioned model directories) that names the active version.
	ModelFileCurrent = "CURRENT"
)

// ModelTensorKind is the element type of a contract tensor.
type ModelTensorKind uint8

// Element types used by the contract.
const (
	ModelFloat32 ModelTensorKind = iota + 1
	ModelInt64
)

// String returns the ONNX name of the element type.
func (k ModelTensorKind) String() string {
	switch k {
	case ModelFloat32:
		return "float32"
	case ModelInt64:
		return "int64"
	default:
		return "unknown"
	}
}

// ModelTensor describes one input or output of the contract.
type ModelTensor struct {
	// Name is the tensor's name in the graph.
	Name string
	// Kind is its element type.
	Kind ModelTensorKind
	// Dims names its two dimensions ("B", "D", "L", "H", "M" or "K").
	Dims [2]string
	// Optional is true for a tensor a model may leave out (then the scorer
	// does not feed it); false means the model must have it.
	Optional bool
}

// ModelContract names one of the two model contracts. The scorer tells them
// apart by the graph's inputs: a graph with an item_history input is a
// sequence model, any other a stateful one.
type ModelContract string

const (
	// ModelContractStateful is the contract of a model that carries a user
	// state: state and events in, new_state and the top K out. The built-in
	// user tower honours it.
	ModelContractStateful ModelContract = "stateful"
	// ModelContractSequence is the contract of a model that reads the
	// user's last H item indices (item_history) and returns the top K; the
	// scorer keeps each user's history.
	ModelContractSequence ModelContract = "sequence"
)

// ModelInputs returns the stateful contract's inputs, in the order the
// scorer feeds them (ModelContractInputs(ModelContractStateful)).
func ModelInputs() []ModelTensor { return ModelContractInputs(ModelContractStateful) }

// ModelOutputs returns the stateful contract's outputs, in the order the
// scorer fetches them (ModelContractOutputs(ModelContractStateful)).
func ModelOutputs() []ModelTensor { return ModelContractOutputs(ModelContractStateful) }

// ModelContractInputs returns the inputs of contract c, in the order the
// scorer feeds them; nil for an unknown contract.
func ModelContractInputs(c ModelContract) []ModelTensor {
	switch c {
	case ModelContractStateful:
		return []ModelTensor{
			{Name: ModelInputState, Kind: ModelFloat32, Dims: [2]string{"B", "D"}},
			{Name: ModelInputEventItems, Kind: ModelInt64, Dims: [2]string{"B", "L"}},
			{Name: ModelInputEventTypes, Kind: ModelInt64, Dims: [2]string{"B", "L"}},
			{Name: ModelInputEventDecays, Kind: ModelFloat32, Dims: [2]string{"B", "L"}},
			{Name: ModelInputExcludeItems, Kind: ModelInt64, Dims: [2]string{"B", "M"}},
		}
	case ModelContractSequence:
		return []ModelTensor{
			{Name: ModelInputItemHistory, Kind: ModelInt64, Dims: [2]string{"B", "H"}},
			{Name: ModelInputExcludeItems, Kind: ModelInt64, Dims: [2]string{"B", "M"}, Optional: true},
		}
	}
	return nil
}

// ModelContractOutputs returns the outputs of contract c, in the order the
// scorer fetches them; nil for an unknown contract.
func ModelContractOutputs(c ModelContract) []ModelTensor {
	switch c {
	case ModelContractStateful:
		return []ModelTensor{
			{Name: ModelOutputNewState, Kind: ModelFloat32, Dims: [2]string{"B", "D"}},
			{Name: ModelOutputTopScores, Kind: ModelFloat32, Dims: [2]string{"B", "K"}},
			{Name: ModelOutputTopItems, Kind: ModelInt64, Dims: [2]string{"B", "K"}},
		}
	case ModelContractSequence:
		return []ModelTensor{
			{Name: ModelOutputTopScores, Kind: ModelFloat32, Dims: [2]string{"B", "K"}},
			{Name: ModelOutputTopItems, Kind: ModelInt64, Dims: [2]string{"B", "K"}},
		}
	}
	return nil
}
