package scorertest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
)

// ValueSpec is a graph input or output of a hand-made model.
type ValueSpec struct {
	Name string
	Type uint64 // models.TensorFloat or models.TensorInt64
	Dims []models.Dim
}

// CraftModelDir writes a model directory around a hand-made graph whose
// outputs are Identity copies of inputs (outputs[i] = Identity(from[i])):
// the way to build a model that breaks the contract on purpose.
func CraftModelDir(tb testing.TB, ins, outs []ValueSpec, from []string) string {
	tb.Helper()
	g := &models.GraphWriter{}
	for _, v := range ins {
		g.Input(v.Name, v.Type, v.Dims...)
	}
	for i, v := range outs {
		g.Output(v.Name, v.Type, v.Dims...)
		g.Node("Identity", []string{from[i]}, []string{v.Name})
	}
	dir := tb.TempDir()
	meta, err := json.Marshal(models.ModelMetadata{Version: "crafted", NumItems: 3})
	if err != nil {
		tb.Fatal(err)
	}
	for name, data := range map[string][]byte{
		schemas.ModelFileONNX:     g.Model("crafted", nil),
		schemas.ModelFileItems:    []byte("a\nb\nc\n"),
		schemas.ModelFileMetadata: meta,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
