package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/recstream/recstream/schemas"
)

// ErrNoCurrentVersion is returned (wrapped) by ModelRegistry.Current when
// the models directory has no CURRENT file yet.
var ErrNoCurrentVersion = errors.New("no current model version")

// ModelRegistry is a models directory: one model directory per version
// (models/<version>/, as WriteModelDir or WriteSequenceModelDir write
// them; a directory is never changed once written) and a CURRENT file
// holding the name of the version to serve. Activate rewrites CURRENT
// atomically (a temporary file, fsync, rename, fsync of the directory), so
// a reader sees the old name or the new one, never a mix; a scorer with
// Config.ModelsDir watches it and swaps the new version in.
//
// A version is a directory name: not empty, no path separator, not
// starting with a dot (temporary directories of WriteModelDir do), and not
// CURRENT. Records carry the model's metadata version (plus "+tw<hash>"
// when the configured type weights differ), so name the directory after
// it to keep the two the same.
//
// A ModelRegistry holds only its path; it is safe for concurrent use, and
// several processes may read it while one activates.
type ModelRegistry struct {
	dir string
}

// NewModelRegistry returns the registry of dir. It does not touch the
// file system.
func NewModelRegistry(dir string) *ModelRegistry { return &ModelRegistry{dir: dir} }

// Dir is the models directory.
func (r *ModelRegistry) Dir() string { return r.dir }

// checkVersionName refuses names that are not a plain directory name.
func checkVersionName(version string) error {
	switch {
	case version == "":
		return errors.New("model version is empty")
	case version == schemas.ModelFileCurrent:
		return fmt.Errorf("model version %q is the name of the registry's own file", version)
	case strings.ContainsAny(version, "/\\\x00\r\n\t ") || version != filepath.Base(version):
		return fmt.Errorf("model version %q is not a plain directory name", version)
	case strings.HasPrefix(version, "."):
		return fmt.Errorf("model version %q starts with a dot", version)
	}
	return nil
}

// VersionDir returns the directory of version, checking its name (not
// that it exists).
func (r *ModelRegistry) VersionDir(version string) (string, error) {
	if err := checkVersionName(version); err != nil {
		return "", fmt.Errorf("models dir %s: %w", r.dir, err)
	}
	return filepath.Join(r.dir, version), nil
}

// Current returns the version CURRENT names. Errors wrap
// ErrNoCurrentVersion when there is no CURRENT file.
func (r *ModelRegistry) Current() (string, error) {
	version, _, err := r.CurrentWritten()
	return version, err
}

// CurrentWritten returns the version CURRENT names and when CURRENT was written
// (each Activate writes a new file, so a new time).
func (r *ModelRegistry) CurrentWritten() (string, time.Time, error) {
	path := filepath.Join(r.dir, schemas.ModelFileCurrent)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", time.Time{}, fmt.Errorf("%w: %s does not exist (recstream models activate VERSION --dir %s)", ErrNoCurrentVersion, path, r.dir)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	version := strings.TrimSpace(string(data))
	if err := checkVersionName(version); err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return version, st.ModTime(), nil
}

// ModelVersionInfo describes one version of a registry.
type ModelVersionInfo struct {
	// Version is the directory name.
	Version string
	// Dir is the version's directory.
	Dir string
	// Current is true for the version CURRENT names.
	Current bool
	// Meta is the version's metadata.json; zero when Err is set.
	Meta ModelMetadata
	// Err says why metadata.json could not be read; nil when it was.
	Err error
}

// List returns every version of the registry, sorted by name, with its
// metadata (a directory without a readable metadata.json is listed with
// Err set). It does not check the graphs (LoadModelDir does).
func (r *ModelRegistry) List() ([]ModelVersionInfo, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("list models dir %s: %w", r.dir, err)
	}
	current, err := r.Current()
	if err != nil && !errors.Is(err, ErrNoCurrentVersion) {
		return nil, err
	}
	var out []ModelVersionInfo
	for _, e := range entries {
		if !e.IsDir() || checkVersionName(e.Name()) != nil {
			continue
		}
		info := ModelVersionInfo{Version: e.Name(), Dir: filepath.Join(r.dir, e.Name()), Current: e.Name() == current}
		info.Meta, info.Err = readMetadata(info.Dir)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b ModelVersionInfo) int { return strings.Compare(a.Version, b.Version) })
	return out, nil
}

func readMetadata(dir string) (ModelMetadata, error) {
	var meta ModelMetadata
	data, err := os.ReadFile(filepath.Join(dir, schemas.ModelFileMetadata))
	if err != nil {
		return meta, err
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return ModelMetadata{}, fmt.Errorf("parse %s: %w", schemas.ModelFileMetadata, err)
	}
	if meta.Version == "" {
		return ModelMetadata{}, fmt.Errorf("%s: version is empty", schemas.ModelFileMetadata)
	}
	return meta, nil
}

// Activate makes version the current one: it checks that the version's
// directory holds the files of a model directory with a readable
// metadata.json, then rewrites CURRENT atomically. It does not load the
// graph: a scorer refuses a version whose graph breaks the contract and
// keeps serving the old one (the models activate command checks the graph
// first).
func (r *ModelRegistry) Activate(version string) error {
	dir, err := r.VersionDir(version)
	if err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	for _, f := range []string{schemas.ModelFileONNX, schemas.ModelFileItems} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("activate %s: %w", version, err)
		}
	}
	if _, err := readMetadata(dir); err != nil {
		return fmt.Errorf("activate %s: %w", version, err)
	}
	if err := writeFileAtomic(filepath.Join(r.dir, schemas.ModelFileCurrent), []byte(version+"\n")); err != nil {
		return fmt.Errorf("activate %s: %w", version, err)
	}
	return nil
}

// writeFileAtomic replaces path by data: a temporary file in the same
// directory, written and fsynced, renamed over path, then the directory
// fsynced so that the rename survives a crash.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
