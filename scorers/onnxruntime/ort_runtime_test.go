package onnxruntime_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
)

func TestLibraryPath(t *testing.T) {
	t.Setenv(onnxruntime.LibraryEnv, "")
	found, err := onnxruntime.LibraryPath("")
	if err != nil {
		t.Fatalf("find the library from the package directory (run make setup): %v", err)
	}
	if !strings.HasSuffix(found, filepath.Join(".deps", "onnxruntime", "libonnxruntime.so")) {
		t.Fatalf("found %s, want the repository's .deps copy", found)
	}
	missing := filepath.Join(t.TempDir(), "nope.so")
	for _, tc := range []struct {
		name, configured, env string
		want                  string // path, or error text when wantErr
		wantErr               bool
	}{
		{name: "configured wins", configured: found, env: missing, want: found},
		{name: "configured missing", configured: missing, want: "library_path names " + missing, wantErr: true},
		{name: "env", env: found, want: found},
		{name: "env missing", env: missing, want: "ONNXRUNTIME_LIB names " + missing, wantErr: true},
		{name: "walk up", want: found},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(onnxruntime.LibraryEnv, tc.env)
			got, err := onnxruntime.LibraryPath(tc.configured)
			if tc.wantErr {
				if !errors.Is(err, onnxruntime.ErrLibraryNotFound) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("LibraryPath = %q, %v; want ErrLibraryNotFound naming %q", got, err, tc.want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("LibraryPath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("nowhere", func(t *testing.T) {
		t.Setenv(onnxruntime.LibraryEnv, "")
		t.Chdir(t.TempDir())
		_, err := onnxruntime.LibraryPath("")
		if !errors.Is(err, onnxruntime.ErrLibraryNotFound) || !strings.Contains(err.Error(), "run make setup") {
			t.Fatalf("LibraryPath outside the repository = %v, want a 'run make setup' error", err)
		}
	})
}

func TestRuntimeIsShared(t *testing.T) {
	a, err := onnxruntime.OpenRuntime("", nil)
	if err != nil {
		t.Fatalf("open (run make setup): %v", err)
	}
	b, err := onnxruntime.OpenRuntime("", nil)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	if a.Version() == "" || !strings.HasPrefix(a.Version(), "1.") {
		t.Errorf("version %q", a.Version())
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.Symlink(a.LibraryPath(), other); err != nil {
		t.Fatal(err)
	}
	if c, err := onnxruntime.OpenRuntime(other, nil); err == nil {
		c.Close()
		t.Fatal("a second library path in one process was accepted")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close of a: %v", err)
	}
	if !ort.IsInitialized() {
		t.Fatal("closing one of two runtimes destroyed the environment")
	}
	tower := scorertest.TowerFromSpec(t, scorertest.Spec(5, 2, 1))
	model, err := models.BuildUserTower(&models.UserTowerGraph{Dim: 2, Steps: 1, TopK: 2, ItemEmbeddings: tower.Emb, TypeWeights: tower.Weights, ItemPrior: tower.Prior})
	if err != nil {
		t.Fatal(err)
	}
	in, out := scorertest.ContractNames()
	if _, err := a.NewSession(model, in, out, onnxruntime.SessionOptions{}); err == nil {
		t.Fatal("a closed runtime created a session")
	}
	sess, err := b.NewSession(model, in, out, onnxruntime.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatalf("session on the remaining runtime: %v", err)
	}
	sess.Destroy()
	if err := b.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	if ort.IsInitialized() {
		t.Fatal("the last close left the environment up")
	}
}
