// Package onnxruntime finds and opens the ONNX Runtime shared library once
// per process and creates sessions on it with the threading the scorer
// needs. The library is fetched by make setup, never committed.
package onnxruntime
