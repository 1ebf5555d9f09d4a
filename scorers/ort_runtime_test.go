package scorers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

func TestLibraryPath(t *testing.T) {
	t.Setenv(LibraryEnv, "")
	found, err := LibraryPath("")
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
			t.Setenv(LibraryEnv, tc.env)
			got, err := LibraryPath(tc.configured)
			if tc.wantErr {
				if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), tc.want) {
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
		t.Setenv(LibraryEnv, "")
		t.Chdir(t.TempDir())
		_, err := LibraryPath("")
		if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "run make setup") {
			t.Fatalf("LibraryPath outside the repository = %v, want a 'run make setup' error", err)
		}
	})
}

func TestRuntimeIsShared(t *testing.T) {
	a, err := OpenRuntime("", nil)
	if err != nil {
		t.Fatalf("open (run make setup): %v", err)
	}
	b, err := OpenRuntime("", nil)
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
	if c, err := OpenRuntime(other, nil); err == nil {
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
	tower := towerFromSpec(t, testSpec(5, 2, 1))
	model, err := BuildUserTower(&UserTowerGraph{Dim: 2, Steps: 1, TopK: 2, ItemEmbeddings: tower.emb, TypeWeights: tower.weights, ItemPrior: tower.prior})
	if err != nil {
		t.Fatal(err)
	}
	in, out := contractNames()
	if _, err := a.newSession(model, in, out, sessionOptions{}); err == nil {
		t.Fatal("a closed runtime created a session")
	}
	sess, err := b.newSession(model, in, out, sessionOptions{IntraOpThreads: 1})
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
