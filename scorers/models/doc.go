// Package models is recstream's model format: the versioned model directory
// (model.onnx, items.txt, metadata.json; schemas/MODEL.md), the registry of
// versions with its CURRENT pointer, and the ONNX graphs written from Go.
//
//   - model_dir.go loads a directory and checks its graph against the
//     contract; model_dir_writer.go writes the built-in user tower's;
//   - model_registry.go lists, resolves and activates versions;
//   - onnx_graph_writer.go encodes ONNX protobuf without generated code;
//     user_tower_builder.go and sequence_model_builder.go build the two
//     built-in graphs with it, onnx_initializers.go reads and patches their
//     constants;
//   - event_type_weights.go and deterministic_math.go hold what the writer,
//     the scorer and the trainers must agree on bit for bit.
//
// Checking a graph reads its inputs and outputs through ONNX Runtime, so
// LoadModelDir needs an open onnxruntime.Runtime; the package creates no
// session: serving is package scorers, training scorers/training.
package models
