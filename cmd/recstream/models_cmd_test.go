package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
)

func TestModelsCommand(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2", "v3"} {
		spec := models.ModelSpec{Version: v, Items: []string{"a", "b", "c"},
			Embeddings: [][]float32{{1, 0}, {0, 1}, {1, 1}}}
		if err := models.WriteModelDir(filepath.Join(dir, v), spec); err != nil {
			t.Fatal(err)
		}
	}
	// v3's graph is not a model.
	if err := os.WriteFile(filepath.Join(dir, "v3", schemas.ModelFileONNX), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := runCLI(t, "models", "list"); err == nil || !strings.Contains(err.Error(), "--dir is required") {
		t.Fatalf("list without --dir: %v", err)
	}
	out, err := runCLI(t, "models", "activate", "v2", "--dir", dir)
	if err != nil || !strings.Contains(out, "current version: v2 (was none)") || !strings.Contains(out, "stateful model v2, 3 items") {
		t.Fatalf("activate v2: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "models", "activate", "v3", "--dir", dir); err == nil || !strings.Contains(err.Error(), "refuse to activate v3") {
		t.Fatalf("activate of a broken version: %v", err)
	}
	if _, err := runCLI(t, "models", "activate", "nope", "--dir", dir); err == nil {
		t.Fatal("activate of a missing version succeeded")
	}
	if cur, err := models.NewModelRegistry(dir).Current(); err != nil || cur != "v2" {
		t.Fatalf("CURRENT = %q, %v after refused activations; want v2", cur, err)
	}
	out, err = runCLI(t, "models", "list", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "* ") || !strings.Contains(lines[2], "v2") ||
		!strings.Contains(lines[1], "user_tower") || strings.HasPrefix(lines[1], "*") {
		t.Fatalf("list:\n%s", out)
	}
	out, err = runCLI(t, "models", "activate", "v1", "--dir", dir, "--no-check")
	if err != nil || !strings.Contains(out, "current version: v1 (was v2)") {
		t.Fatalf("activate --no-check: %v\n%s", err, out)
	}
}
