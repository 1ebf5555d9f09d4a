package models

import (
	"encoding/binary"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/recstream/recstream/schemas"
)

// ONNX protobuf field numbers (onnx/onnx.proto) and enum values used below.
const (
	TensorFloat = 1 // TensorProto.DataType FLOAT
	TensorInt64 = 7 // TensorProto.DataType INT64

	attrTypeInt    = 2
	attrTypeTensor = 4
	attrTypeInts   = 7
)

// GraphWriter accumulates the encoded parts of an ONNX GraphProto, written
// with protowire so that no generated ONNX protobuf package is needed: the
// builders here, and tests that craft contract-breaking graphs, use it.
type GraphWriter struct {
	nodes, inits, inputs, outputs [][]byte
	count                         int
}

// Dim is one dimension of a graph input or output: a fixed size or a named
// (dynamic) one.
type Dim struct {
	value int64
	param string
}

// DimValue is a dimension of fixed size v.
func DimValue(v int64) Dim { return Dim{value: v} }

// DimParam is a dynamic dimension named p ("B" for the batch).
func DimParam(p string) Dim { return Dim{param: p} }

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
	return rawTensor(name, dims, TensorFloat, raw)
}

func int64Tensor(name string, dims []int64, vals []int64) []byte {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return rawTensor(name, dims, TensorInt64, raw)
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
func valueInfo(name string, elemType uint64, dims ...Dim) []byte {
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

// Input declares a graph input of an ONNX element type (TensorFloat,
// TensorInt64) and shape.
func (b *GraphWriter) Input(name string, elemType uint64, dims ...Dim) {
	b.inputs = append(b.inputs, valueInfo(name, elemType, dims...))
}

// Output declares a graph output.
func (b *GraphWriter) Output(name string, elemType uint64, dims ...Dim) {
	b.outputs = append(b.outputs, valueInfo(name, elemType, dims...))
}

// Initializer adds an encoded TensorProto as a constant of the graph.
func (b *GraphWriter) Initializer(t []byte) { b.inits = append(b.inits, t) }

// Node appends an operator; nodes must come in topological order.
func (b *GraphWriter) Node(op string, inputs, outputs []string, attrs ...[]byte) {
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

// Model encodes the ModelProto. metadata keys are written in sorted order so
// that the same graph always gives the same bytes.
func (b *GraphWriter) Model(name string, metadata map[string]string) []byte {
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
