// Package scorertest holds what the tests of scorers and its sub-packages
// share: the real ONNX Runtime, small model specs, raw graph runs and a
// plain-Go reference of the built-in user tower. It is internal to scorers
// and imported by tests only.
package scorertest

import (
	"testing"

	"github.com/recstream/recstream/scorers/onnxruntime"
)

// OpenRuntime opens the real ONNX Runtime; a missing library fails the test
// (it is part of the build: make setup fetches it).
func OpenRuntime(tb testing.TB) *onnxruntime.Runtime {
	tb.Helper()
	rt, err := onnxruntime.OpenRuntime("", nil)
	if err != nil {
		tb.Fatalf("open ONNX Runtime (run make setup): %v", err)
	}
	tb.Cleanup(func() {
		if err := rt.Close(); err != nil {
			tb.Errorf("close runtime: %v", err)
		}
	})
	return rt
}
