package main

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestStagesAreLeaves: data flows consumers → scorers → sinks through the
// wiring in cmd/, so each stage may import schemas (the data contracts),
// its own sub-packages and third-party packages, and nothing else of the
// project: no other stage, nothing under internal/ (connection security
// arrives as values the wiring builds — a kafka-go dialer or transport, a
// *tls.Config). Test files may use test helpers such as internal/embedded.
func TestStagesAreLeaves(t *testing.T) {
	const module = "github.com/recstream/recstream"
	root := filepath.Join("..", "..")
	for _, stage := range []string{"consumers", "scorers", "sinks"} {
		err := filepath.WalkDir(filepath.Join(root, stage), func(dir string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			pkg, err := build.ImportDir(dir, 0)
			if _, none := err.(*build.NoGoError); none {
				return nil
			}
			if err != nil {
				return err
			}
			for _, imp := range pkg.Imports {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				rel := strings.TrimPrefix(imp, module+"/")
				if rel == "schemas" || rel == stage || strings.HasPrefix(rel, stage+"/") {
					continue
				}
				t.Errorf("%s imports %s: a stage imports only schemas, itself and third-party packages; "+
					"pass what it needs in from the wiring", dir, imp)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", stage, err)
		}
	}
	// The walk must have seen the stages (a moved tree would pass vacuously).
	for _, stage := range []string{"consumers", "scorers", "sinks"} {
		entries, err := os.ReadDir(filepath.Join(root, stage))
		if err != nil || !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasSuffix(e.Name(), ".go") }) {
			t.Fatalf("stage %s has no Go files at %s: %v", stage, filepath.Join(root, stage), err)
		}
	}
}
