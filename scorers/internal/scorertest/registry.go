package scorertest

import (
	"path/filepath"
	"testing"

	"github.com/recstream/recstream/scorers/models"
)

// Registry returns a registry in a temporary directory holding the given
// versions, written by their writers (TowerVersion, SequenceVersion).
func Registry(tb testing.TB, versions map[string]func(dir string) error) *models.ModelRegistry {
	tb.Helper()
	r := models.NewModelRegistry(tb.TempDir())
	for name, write := range versions {
		if err := write(filepath.Join(r.Dir(), name)); err != nil {
			tb.Fatalf("write version %s: %v", name, err)
		}
	}
	return r
}

// TowerVersion writes a built-in user tower of spec as a version.
func TowerVersion(spec models.ModelSpec) func(string) error {
	return func(dir string) error { return models.WriteModelDir(dir, spec) }
}

// SequenceVersion writes a built-in sequence model of spec as a version.
func SequenceVersion(spec models.SequenceModelSpec) func(string) error {
	return func(dir string) error { return models.WriteSequenceModelDir(dir, spec) }
}
