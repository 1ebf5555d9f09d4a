package scorers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

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
	b := &graphWriter{}

	batch := dimParam("B")
	if g.Batch > 0 {
		batch = dimValue(int64(g.Batch))
	}
	b.input(schemas.ModelInputState, tensorFloat, batch, dimValue(d))
	b.input(schemas.ModelInputEventItems, tensorInt64, batch, dimValue(int64(g.Steps)))
	b.input(schemas.ModelInputEventTypes, tensorInt64, batch, dimValue(int64(g.Steps)))
	b.input(schemas.ModelInputEventDecays, tensorFloat, batch, dimValue(int64(g.Steps)))
	b.input(schemas.ModelInputExcludeItems, tensorInt64, batch, dimParam("M"))
	b.output(schemas.ModelOutputNewState, tensorFloat, batch, dimValue(d))
	b.output(schemas.ModelOutputTopScores, tensorFloat, batch, dimValue(k))
	b.output(schemas.ModelOutputTopItems, tensorInt64, batch, dimValue(k))

	b.initializer(floatTensor(schemas.ModelInitItemEmbeddings, []int64{rows, d}, g.ItemEmbeddings))
	b.initializer(floatTensor(schemas.ModelInitTypeWeights, []int64{int64(len(g.TypeWeights))}, g.TypeWeights))
	b.initializer(floatTensor(schemas.ModelInitItemPrior, []int64{rows}, g.ItemPrior))
	b.initializer(int64Tensor("k", []int64{1}, []int64{k}))
	b.initializer(int64Tensor("axis_last", []int64{1}, []int64{-1}))
	b.initializer(int64Tensor("axis_1", []int64{1}, []int64{1}))

	// Contributions of every event at once: weight(type) * embedding(item).
	b.node("Gather", []string{schemas.ModelInitItemEmbeddings, schemas.ModelInputEventItems}, []string{"ev_emb"}, attrInt("axis", 0))
	b.node("Gather", []string{schemas.ModelInitTypeWeights, schemas.ModelInputEventTypes}, []string{"ev_w"}, attrInt("axis", 0))
	b.node("Unsqueeze", []string{"ev_w", "axis_last"}, []string{"ev_w3"})
	b.node("Mul", []string{"ev_emb", "ev_w3"}, []string{"ev_x"})

	// The sequential update, unrolled: one Mul and one Add per step.
	xs := make([]string, g.Steps)
	ds := make([]string, g.Steps)
	for l := range g.Steps {
		xs[l] = "x_" + strconv.Itoa(l)
		ds[l] = "decay_" + strconv.Itoa(l)
	}
	if g.Steps == 1 {
		b.node("Identity", []string{"ev_x"}, xs)
		b.node("Identity", []string{schemas.ModelInputEventDecays}, ds)
	} else {
		b.node("Split", []string{"ev_x"}, xs, attrInt("axis", 1))
		b.node("Split", []string{schemas.ModelInputEventDecays}, ds, attrInt("axis", 1))
	}
	state := schemas.ModelInputState
	for l := range g.Steps {
		n := strconv.Itoa(l)
		b.node("Squeeze", []string{xs[l], "axis_1"}, []string{"xs_" + n})
		b.node("Mul", []string{state, ds[l]}, []string{"decayed_" + n})
		next := "state_" + strconv.Itoa(l+1)
		b.node("Add", []string{"decayed_" + n, "xs_" + n}, []string{next})
		state = next
	}
	b.node("Identity", []string{state}, []string{schemas.ModelOutputNewState})

	// Scores, masking and top-K.
	b.node("Transpose", []string{schemas.ModelInitItemEmbeddings}, []string{"emb_t"}, attrInts("perm", 1, 0))
	b.node("MatMul", []string{state, "emb_t"}, []string{"dots"})
	b.node("Add", []string{"dots", schemas.ModelInitItemPrior}, []string{"scores"})
	b.node("Shape", []string{schemas.ModelInputExcludeItems}, []string{"ex_shape"})
	b.node("ConstantOfShape", []string{"ex_shape"}, []string{"ex_fill"},
		attrTensor("value", floatTensor("", []int64{1}, []float32{schemas.ModelMaskedScore})))
	b.node("ScatterElements", []string{"scores", schemas.ModelInputExcludeItems, "ex_fill"}, []string{"masked"}, attrInt("axis", 1))
	b.node("TopK", []string{"masked", "k"}, []string{schemas.ModelOutputTopScores, schemas.ModelOutputTopItems},
		attrInt("axis", 1), attrInt("largest", 1), attrInt("sorted", 1))

	return b.model("recstream_user_tower", g.Metadata), nil
}

// ONNX protobuf field numbers (onnx/onnx.proto) and enum values used below.
const (
	tensorFloat = 1 // TensorProto.DataType FLOAT
	tensorInt64 = 7 // TensorProto.DataType INT64

	attrTypeInt    = 2
	attrTypeTensor = 4
	attrTypeInts   = 7
)

// graphWriter accumulates the encoded parts of a GraphProto.
type graphWriter struct {
	nodes, inits, inputs, outputs [][]byte
	count                         int
}

type dim struct {
	value int64
	param string
}

func dimValue(v int64) dim  { return dim{value: v} }
func dimParam(p string) dim { return dim{param: p} }
func attrInt(name string, v int64) []byte {
	a := protowire.AppendTag(nil, 1, protowire.BytesType)
	a = protowire.AppendString(a, name)
	a = protowire.AppendTag(a, 3, protowire.VarintType)
	a = protowire.AppendVarint(a, uint64(v))
	a = protowire.AppendTag(a, 20, protowire.VarintType)
	return protowire.AppendVarint(a, attrTypeInt)
}

func attrInts(name string, vs ...int64) []byte {
	a := protowire.AppendTag(nil, 1, protowire.BytesType)
	a = protowire.AppendString(a, name)
	for _, v := range vs {
		a = protowire.AppendTag(a, 8, protowire.VarintType)
		a = protowire.AppendVarint(a, uint64(v))
	}
	a = protowire.AppendTag(a, 20, protowire.VarintType)
	return protowire.AppendVarint(a, attrTypeInts)
}

func attrTensor(name string, t []byte) []byte {
	a := protowire.AppendTag(nil, 1, protowire.BytesType)
	a = protowire.AppendString(a, name)
	a = protowire.AppendTag(a, 5, protowire.BytesType)
	a = protowire.AppendBytes(a, t)
	a = protowire.AppendTag(a, 20, protowire.VarintType)
	return protowire.AppendVarint(a, attrTypeTensor)
}

// floatTensor encodes a TensorProto holding vals as little-endian raw_data.
func floatTensor(name string, dims []int64, vals []float32) []byte {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return rawTensor(name, dims, tensorFloat, raw)
}

func int64Tensor(name string, dims []int64, vals []int64) []byte {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return rawTensor(name, dims, tensorInt64, raw)
}

func rawTensor(name string, dims []int64, dataType uint64, raw []byte) []byte {
	var t []byte
	for _, d := range dims {
		t = protowire.AppendTag(t, 1, protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(d))
	}
	t = protowire.AppendTag(t, 2, protowire.VarintType)
	t = protowire.AppendVarint(t, dataType)
	if name != "" {
		t = protowire.AppendTag(t, 8, protowire.BytesType)
		t = protowire.AppendString(t, name)
	}
	t = protowire.AppendTag(t, 9, protowire.BytesType)
	return protowire.AppendBytes(t, raw)
}

// valueInfo encodes a ValueInfoProto of a tensor.
func valueInfo(name string, elemType uint64, dims ...dim) []byte {
	var shape []byte
	for _, d := range dims {
		var dd []byte
		if d.param != "" {
			dd = protowire.AppendTag(dd, 2, protowire.BytesType)
			dd = protowire.AppendString(dd, d.param)
		} else {
			dd = protowire.AppendTag(dd, 1, protowire.VarintType)
			dd = protowire.AppendVarint(dd, uint64(d.value))
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, dd)
	}
	tensorType := protowire.AppendTag(nil, 1, protowire.VarintType)
	tensorType = protowire.AppendVarint(tensorType, elemType)
	tensorType = protowire.AppendTag(tensorType, 2, protowire.BytesType)
	tensorType = protowire.AppendBytes(tensorType, shape)
	typeProto := protowire.AppendTag(nil, 1, protowire.BytesType)
	typeProto = protowire.AppendBytes(typeProto, tensorType)

	v := protowire.AppendTag(nil, 1, protowire.BytesType)
	v = protowire.AppendString(v, name)
	v = protowire.AppendTag(v, 2, protowire.BytesType)
	return protowire.AppendBytes(v, typeProto)
}

func (b *graphWriter) input(name string, elemType uint64, dims ...dim) {
	b.inputs = append(b.inputs, valueInfo(name, elemType, dims...))
}

func (b *graphWriter) output(name string, elemType uint64, dims ...dim) {
	b.outputs = append(b.outputs, valueInfo(name, elemType, dims...))
}

func (b *graphWriter) initializer(t []byte) { b.inits = append(b.inits, t) }

func (b *graphWriter) node(op string, inputs, outputs []string, attrs ...[]byte) {
	var n []byte
	for _, in := range inputs {
		n = protowire.AppendTag(n, 1, protowire.BytesType)
		n = protowire.AppendString(n, in)
	}
	for _, out := range outputs {
		n = protowire.AppendTag(n, 2, protowire.BytesType)
		n = protowire.AppendString(n, out)
	}
	b.count++
	n = protowire.AppendTag(n, 3, protowire.BytesType)
	n = protowire.AppendString(n, op+"_"+strconv.Itoa(b.count))
	n = protowire.AppendTag(n, 4, protowire.BytesType)
	n = protowire.AppendString(n, op)
	for _, a := range attrs {
		n = protowire.AppendTag(n, 5, protowire.BytesType)
		n = protowire.AppendBytes(n, a)
	}
	b.nodes = append(b.nodes, n)
}

// model encodes the ModelProto. metadata keys are written in sorted order so
// that the same graph always gives the same bytes.
func (b *graphWriter) model(name string, metadata map[string]string) []byte {
	var g []byte
	for _, n := range b.nodes {
		g = protowire.AppendTag(g, 1, protowire.BytesType)
		g = protowire.AppendBytes(g, n)
	}
	g = protowire.AppendTag(g, 2, protowire.BytesType)
	g = protowire.AppendString(g, name)
	for _, t := range b.inits {
		g = protowire.AppendTag(g, 5, protowire.BytesType)
		g = protowire.AppendBytes(g, t)
	}
	for _, v := range b.inputs {
		g = protowire.AppendTag(g, 11, protowire.BytesType)
		g = protowire.AppendBytes(g, v)
	}
	for _, v := range b.outputs {
		g = protowire.AppendTag(g, 12, protowire.BytesType)
		g = protowire.AppendBytes(g, v)
	}

	m := protowire.AppendTag(nil, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, schemas.ModelIRVersion)
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendString(m, "recstream")
	opset := protowire.AppendTag(nil, 1, protowire.BytesType)
	opset = protowire.AppendString(opset, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, schemas.ModelOpsetVersion)
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	m = protowire.AppendBytes(m, g)
	m = protowire.AppendTag(m, 8, protowire.BytesType)
	m = protowire.AppendBytes(m, opset)
	for _, k := range sortedKeys(metadata) {
		kv := protowire.AppendTag(nil, 1, protowire.BytesType)
		kv = protowire.AppendString(kv, k)
		kv = protowire.AppendTag(kv, 2, protowire.BytesType)
		kv = protowire.AppendString(kv, metadata[k])
		m = protowire.AppendTag(m, 14, protowire.BytesType)
		m = protowire.AppendBytes(m, kv)
	}
	return m
}

// replaceFloatInitializer returns model with the float initializer called
// name replaced by vals (shape [len(vals)]). found is false, and model is
// returned unchanged, when the graph has no initializer of that name.
func replaceFloatInitializer(model []byte, name string, vals []float32) (out []byte, found bool, err error) {
	out = make([]byte, 0, len(model)+4*len(vals))
	for rest := model; len(rest) > 0; {
		num, typ, n := protowire.ConsumeField(rest)
		if n < 0 {
			return nil, false, fmt.Errorf("parse model: %w", protowire.ParseError(n))
		}
		field := rest[:n]
		rest = rest[n:]
		if num != 7 || typ != protowire.BytesType { // ModelProto.graph
			out = append(out, field...)
			continue
		}
		_, _, tagLen := protowire.ConsumeTag(field)
		graph, _ := protowire.ConsumeBytes(field[tagLen:])
		newGraph, ok, err := replaceGraphInitializer(graph, name, vals)
		if err != nil {
			return nil, false, err
		}
		found = found || ok
		out = protowire.AppendTag(out, 7, protowire.BytesType)
		out = protowire.AppendBytes(out, newGraph)
	}
	return out, found, nil
}

func replaceGraphInitializer(graph []byte, name string, vals []float32) ([]byte, bool, error) {
	out := make([]byte, 0, len(graph)+4*len(vals))
	found := false
	for rest := graph; len(rest) > 0; {
		num, typ, n := protowire.ConsumeField(rest)
		if n < 0 {
			return nil, false, fmt.Errorf("parse graph: %w", protowire.ParseError(n))
		}
		field := rest[:n]
		rest = rest[n:]
		if num == 5 && typ == protowire.BytesType { // GraphProto.initializer
			_, _, tagLen := protowire.ConsumeTag(field)
			tensor, _ := protowire.ConsumeBytes(field[tagLen:])
			tname, err := tensorName(tensor)
			if err != nil {
				return nil, false, err
			}
			if tname == name {
				found = true
				out = protowire.AppendTag(out, 5, protowire.BytesType)
				out = protowire.AppendBytes(out, floatTensor(name, []int64{int64(len(vals))}, vals))
				continue
			}
		}
		out = append(out, field...)
	}
	return out, found, nil
}

func tensorName(tensor []byte) (string, error) {
	for rest := tensor; len(rest) > 0; {
		num, typ, n := protowire.ConsumeField(rest)
		if n < 0 {
			return "", fmt.Errorf("parse initializer: %w", protowire.ParseError(n))
		}
		if num == 8 && typ == protowire.BytesType { // TensorProto.name
			_, _, tagLen := protowire.ConsumeTag(rest)
			v, _ := protowire.ConsumeString(rest[tagLen:])
			return v, nil
		}
		rest = rest[n:]
	}
	return "", nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// readFloatInitializer returns the dims and values of the float
// initializer called name in model (raw_data or float_data); found is
// false when the graph has no initializer of that name.
func readFloatInitializer(model []byte, name string) (dims []int64, vals []float32, found bool, err error) {
	graph, err := subMessage(model, 7) // ModelProto.graph
	if err != nil || graph == nil {
		return nil, nil, false, err
	}
	for rest := graph; len(rest) > 0; {
		num, typ, n := protowire.ConsumeField(rest)
		if n < 0 {
			return nil, nil, false, fmt.Errorf("parse graph: %w", protowire.ParseError(n))
		}
		field := rest[:n]
		rest = rest[n:]
		if num != 5 || typ != protowire.BytesType { // GraphProto.initializer
			continue
		}
		_, _, tagLen := protowire.ConsumeTag(field)
		tensor, _ := protowire.ConsumeBytes(field[tagLen:])
		tname, err := tensorName(tensor)
		if err != nil {
			return nil, nil, false, err
		}
		if tname != name {
			continue
		}
		dims, vals, err := decodeFloatTensor(tensor)
		if err != nil {
			return nil, nil, true, fmt.Errorf("initializer %s: %w", name, err)
		}
		return dims, vals, true, nil
	}
	return nil, nil, false, nil
}

// subMessage returns the first length-delimited field num of msg; nil when
// there is none.
func subMessage(msg []byte, num protowire.Number) ([]byte, error) {
	for rest := msg; len(rest) > 0; {
		n, typ, l := protowire.ConsumeField(rest)
		if l < 0 {
			return nil, fmt.Errorf("parse model: %w", protowire.ParseError(l))
		}
		if n == num && typ == protowire.BytesType {
			_, _, tagLen := protowire.ConsumeTag(rest)
			v, _ := protowire.ConsumeBytes(rest[tagLen:])
			return v, nil
		}
		rest = rest[l:]
	}
	return nil, nil
}

// decodeFloatTensor reads a float TensorProto's dims and values.
func decodeFloatTensor(tensor []byte) (dims []int64, vals []float32, err error) {
	var raw []byte
	dataType := uint64(0)
	for rest := tensor; len(rest) > 0; {
		num, typ, n := protowire.ConsumeField(rest)
		if n < 0 {
			return nil, nil, fmt.Errorf("parse tensor: %w", protowire.ParseError(n))
		}
		_, _, tagLen := protowire.ConsumeTag(rest)
		body := rest[tagLen:n]
		switch {
		case num == 1 && typ == protowire.VarintType: // dims
			v, _ := protowire.ConsumeVarint(body)
			dims = append(dims, int64(v))
		case num == 1 && typ == protowire.BytesType: // packed dims
			p, _ := protowire.ConsumeBytes(body)
			for len(p) > 0 {
				v, l := protowire.ConsumeVarint(p)
				if l < 0 {
					return nil, nil, errors.New("parse tensor dims")
				}
				dims = append(dims, int64(v))
				p = p[l:]
			}
		case num == 2 && typ == protowire.VarintType: // data_type
			dataType, _ = protowire.ConsumeVarint(body)
		case num == 4 && typ == protowire.BytesType: // packed float_data
			p, _ := protowire.ConsumeBytes(body)
			for i := 0; i+4 <= len(p); i += 4 {
				vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(p[i:])))
			}
		case num == 4 && typ == protowire.Fixed32Type: // unpacked float_data
			v, _ := protowire.ConsumeFixed32(body)
			vals = append(vals, math.Float32frombits(v))
		case num == 9 && typ == protowire.BytesType: // raw_data
			raw, _ = protowire.ConsumeBytes(body)
		}
		rest = rest[n:]
	}
	if dataType != tensorFloat {
		return nil, nil, fmt.Errorf("data type %d, want float (1)", dataType)
	}
	if raw != nil {
		if len(raw)%4 != 0 {
			return nil, nil, fmt.Errorf("raw_data of %d bytes is not whole floats", len(raw))
		}
		vals = make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	want := int64(1)
	for _, d := range dims {
		want *= d
	}
	if int64(len(vals)) != want {
		return nil, nil, fmt.Errorf("%d values for dims %v", len(vals), dims)
	}
	return dims, vals, nil
}
