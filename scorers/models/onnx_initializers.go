package models

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// ReplaceFloatInitializer returns model with the float initializer called
// name replaced by vals (shape [len(vals)]). found is false, and model is
// returned unchanged, when the graph has no initializer of that name.
func ReplaceFloatInitializer(model []byte, name string, vals []float32) (out []byte, found bool, err error) {
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

// ReadFloatInitializer returns the dims and values of the float
// initializer called name in model (raw_data or float_data); found is
// false when the graph has no initializer of that name.
func ReadFloatInitializer(model []byte, name string) (dims []int64, vals []float32, found bool, err error) {
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
	if dataType != TensorFloat {
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
