package models_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
)

func TestModelRegistryActivateAndList(t *testing.T) {
	spec := scorertest.Spec(10, 4, 1)
	v1, v2 := spec, spec
	v1.Version, v2.Version = "v1", "v2"
	r := scorertest.Registry(t, map[string]func(string) error{"v1": scorertest.TowerVersion(v1), "v2": scorertest.TowerVersion(v2)})
	if _, err := r.Current(); !errors.Is(err, models.ErrNoCurrentVersion) || !strings.Contains(err.Error(), "models activate") {
		t.Fatalf("Current with no CURRENT file = %v", err)
	}
	if err := r.Activate("v2"); err != nil {
		t.Fatal(err)
	}
	if cur, err := r.Current(); err != nil || cur != "v2" {
		t.Fatalf("Current = %q, %v; want v2", cur, err)
	}
	data, _ := os.ReadFile(filepath.Join(r.Dir(), schemas.ModelFileCurrent))
	if string(data) != "v2\n" {
		t.Fatalf("CURRENT holds %q", data)
	}
	if err := os.Mkdir(filepath.Join(r.Dir(), "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list {
		names = append(names, v.Version)
	}
	if !slices.Equal(names, []string{"broken", "v1", "v2"}) || list[0].Err == nil || list[1].Current || !list[2].Current ||
		list[2].Meta.Version != "v2" || list[2].Meta.NumItems != 10 {
		t.Fatalf("List = %+v", list)
	}
	for _, tc := range []struct{ version, want string }{
		{"v9", "no such file"},
		{"broken", "no such file"},
		{"../v1", "not a plain directory name"},
		{".tmp", "starts with a dot"},
		{"CURRENT", "registry's own file"},
		{"", "empty"},
	} {
		if err := r.Activate(tc.version); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Activate(%q) = %v, want an error containing %q", tc.version, err, tc.want)
		}
	}
	if cur, _ := r.Current(); cur != "v2" {
		t.Fatalf("a refused activation changed CURRENT to %q", cur)
	}
	entries, _ := os.ReadDir(r.Dir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), schemas.ModelFileCurrent), []byte("../etc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Current(); err == nil || !strings.Contains(err.Error(), "not a plain directory name") {
		t.Fatalf("Current of a CURRENT naming a path = %v", err)
	}
}
