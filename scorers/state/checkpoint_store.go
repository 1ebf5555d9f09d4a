// A CheckpointStore saves and restores the scorer's per-user state
// together with the input offsets it reflects, so that a restart resumes
// from the last checkpoint instead of replaying the whole input.
//
// A checkpoint is one generation directory:
//
//	<dir>/gen-00000000000000000042/
//	    MANIFEST.json          offsets, model version, file checksums
//	    partition-0003.arrow   that partition's users (Arrow IPC file)
//	    ...
//
// It is written into a temporary directory, every file fsynced, then renamed
// into place and the parent fsynced, so a crash leaves either the whole
// generation or none of it. Each file's SHA-256 is in the manifest: a
// corrupted or truncated checkpoint is detected on load, logged, and the
// previous generation is used instead. Keep generations are kept.

package state

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// CheckpointConfig configures checkpointing. The zero value disables it.
type CheckpointConfig struct {
	// Dir holds the generations. Empty disables checkpoints: a restart then
	// starts from the committed offsets with empty user state.
	Dir string `yaml:"dir"`
	// Interval is the least time between two checkpoints (default 30s).
	Interval time.Duration `yaml:"interval"`
	// Keep is how many generations are kept (default 3, at least 2 so that
	// a corrupted newest one has a predecessor).
	Keep int `yaml:"keep"`
}

// WithDefaults fills zero fields.
func (c CheckpointConfig) WithDefaults() CheckpointConfig {
	c.Interval = cmp.Or(c.Interval, 30*time.Second)
	c.Keep = cmp.Or(c.Keep, 3)
	return c
}

// Validate reports the first invalid field.
func (c CheckpointConfig) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("interval: must be >= 0, got %s", c.Interval)
	case c.Keep < 2:
		return fmt.Errorf("keep: must be >= 2, got %d", c.Keep)
	}
	return nil
}

// Manifest describes one generation.
type Manifest struct {
	// Generation numbers checkpoints in the order they were written.
	Generation uint64 `json:"generation"`
	// CreatedAt is when the checkpoint was taken.
	CreatedAt time.Time `json:"created_at"`
	// Topic is the input topic the offsets belong to.
	Topic string `json:"topic"`
	// Offsets is, per partition, the next input offset to read: every event
	// before it is reflected in the saved state.
	Offsets map[int32]int64 `json:"offsets"`
	// ModelVersion is the model whose state this is.
	ModelVersion string `json:"model_version"`
	// Dim is the width of the saved state vectors, HistoryLen the length
	// of the saved item histories (one of them is 0).
	Dim        int `json:"dim"`
	HistoryLen int `json:"history_len"`
	// Users counts the users saved.
	Users int `json:"users"`
	// Files maps each partition file to its SHA-256.
	Files map[string]string `json:"files"`
	// Extras maps each file of Snapshot.Extras to its SHA-256; absent in
	// generations written before extras existed.
	Extras map[string]string `json:"extras,omitempty"`
}

// ErrNoCheckpoint is returned by LoadLatest when no valid generation exists.
var ErrNoCheckpoint = errors.New("no valid checkpoint")

const (
	manifestName = "MANIFEST.json"
	genPrefix    = "gen-"
	tmpPrefix    = ".tmp-"
)

// CheckpointStore writes and reads checkpoint generations in a directory.
type CheckpointStore struct {
	dir  string
	keep int
	log  *zap.Logger
}

// NewCheckpointStore opens (creating) the checkpoint directory.
func NewCheckpointStore(cfg CheckpointConfig, log *zap.Logger) (*CheckpointStore, error) {
	cfg = cfg.WithDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("checkpoint dir: must be set")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create checkpoint dir %s: %w", cfg.Dir, err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &CheckpointStore{dir: cfg.Dir, keep: cfg.Keep, log: log}, nil
}

// Dir is the checkpoint directory.
func (s *CheckpointStore) Dir() string { return s.dir }

// Generations lists the generation numbers present, newest first (valid or
// not).
func (s *CheckpointStore) Generations() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	var gens []uint64
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), genPrefix) {
			continue
		}
		g, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), genPrefix), 10, 64)
		if err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	slices.Reverse(gens)
	return gens, nil
}

func (s *CheckpointStore) genDir(g uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%020d", genPrefix, g))
}

// Save writes snap as the next generation and prunes old ones; it returns
// the manifest written.
func (s *CheckpointStore) Save(ctx context.Context, snap *Snapshot) (Manifest, error) {
	gens, err := s.Generations()
	if err != nil {
		return Manifest{}, err
	}
	next := uint64(1)
	if len(gens) > 0 {
		next = gens[0] + 1
	}
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix)
	if err != nil {
		return Manifest{}, fmt.Errorf("create temporary checkpoint dir: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename

	m := Manifest{
		Generation: next, CreatedAt: time.Now().UTC(), Topic: snap.Topic,
		Offsets: snap.Offsets, ModelVersion: snap.ModelVersion, Dim: snap.Dim, HistoryLen: snap.HistoryLen,
		Files: map[string]string{},
	}
	for _, part := range snap.partitions() {
		if err := ctx.Err(); err != nil {
			return Manifest{}, err
		}
		name := fmt.Sprintf("partition-%04d.arrow", part)
		sum, n, err := writeFileSynced(filepath.Join(tmp, name), func(w io.Writer) (int, error) {
			return writePartition(w, snap, part)
		})
		if err != nil {
			return Manifest{}, fmt.Errorf("write checkpoint %s: %w", name, err)
		}
		m.Files[name] = sum
		m.Users += n
	}
	for _, name := range slices.Sorted(maps.Keys(snap.Extras)) {
		if err := checkExtraName(name); err != nil {
			return Manifest{}, err
		}
		data := snap.Extras[name]
		sum, _, err := writeFileSynced(filepath.Join(tmp, name), func(w io.Writer) (int, error) {
			_, err := w.Write(data)
			return 0, err
		})
		if err != nil {
			return Manifest{}, fmt.Errorf("write checkpoint %s: %w", name, err)
		}
		if m.Extras == nil {
			m.Extras = map[string]string{}
		}
		m.Extras[name] = sum
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("encode manifest: %w", err)
	}
	if _, _, err := writeFileSynced(filepath.Join(tmp, manifestName), func(w io.Writer) (int, error) {
		_, err := w.Write(raw)
		return 0, err
	}); err != nil {
		return Manifest{}, fmt.Errorf("write manifest: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return Manifest{}, err
	}
	if err := os.Rename(tmp, s.genDir(next)); err != nil {
		return Manifest{}, fmt.Errorf("publish checkpoint generation %d: %w", next, err)
	}
	if err := syncDir(s.dir); err != nil {
		return Manifest{}, err
	}
	s.prune(append([]uint64{next}, gens...))
	return m, nil
}

// prune removes generations beyond the newest keep, and stale temporaries.
func (s *CheckpointStore) prune(gens []uint64) {
	for i, g := range gens {
		if i >= s.keep {
			if err := os.RemoveAll(s.genDir(g)); err != nil {
				s.log.Warn("remove old checkpoint", zap.Uint64("generation", g), zap.Error(err))
			}
		}
	}
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
}

// LoadLatest returns the newest generation that verifies. Every generation
// found broken is logged with the reason and skipped; ErrNoCheckpoint when
// none is left.
func (s *CheckpointStore) LoadLatest(ctx context.Context) (*Snapshot, Manifest, error) {
	gens, err := s.Generations()
	if err != nil {
		return nil, Manifest{}, err
	}
	for _, g := range gens {
		if err := ctx.Err(); err != nil {
			return nil, Manifest{}, err
		}
		snap, m, err := s.Load(g)
		if err == nil {
			return snap, m, nil
		}
		s.log.Error("checkpoint generation is corrupt or unreadable; trying the previous one",
			zap.Uint64("generation", g), zap.String("dir", s.genDir(g)), zap.Error(err))
	}
	return nil, Manifest{}, ErrNoCheckpoint
}

// Load reads and verifies one generation.
func (s *CheckpointStore) Load(g uint64) (*Snapshot, Manifest, error) {
	dir := s.genDir(g)
	raw, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, Manifest{}, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Generation != g {
		return nil, Manifest{}, fmt.Errorf("manifest says generation %d, directory says %d", m.Generation, g)
	}
	snap := &Snapshot{Topic: m.Topic, Offsets: m.Offsets, ModelVersion: m.ModelVersion, Dim: m.Dim, HistoryLen: m.HistoryLen}
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		data, err := readVerified(dir, name, m.Files[name])
		if err != nil {
			return nil, Manifest{}, err
		}
		if err := readPartition(data, snap); err != nil {
			return nil, Manifest{}, fmt.Errorf("decode %s: %w", name, err)
		}
	}
	if len(snap.Users) != m.Users {
		return nil, Manifest{}, fmt.Errorf("manifest counts %d users, files hold %d", m.Users, len(snap.Users))
	}
	for _, name := range slices.Sorted(maps.Keys(m.Extras)) {
		if err := checkExtraName(name); err != nil {
			return nil, Manifest{}, err
		}
		data, err := readVerified(dir, name, m.Extras[name])
		if err != nil {
			return nil, Manifest{}, err
		}
		if snap.Extras == nil {
			snap.Extras = map[string][]byte{}
		}
		snap.Extras[name] = data
	}
	return snap, m, nil
}

// readVerified reads a generation's file and checks it against the
// manifest's SHA-256.
func readVerified(dir, name, want string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("%s: checksum %s, manifest says %s (corrupted or truncated)", name, got[:12], short(want))
	}
	return data, nil
}

// checkExtraName refuses an extra file name that is not a plain name of
// its own in the generation directory.
func checkExtraName(name string) error {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || name == manifestName ||
		strings.HasPrefix(name, "partition-") {
		return fmt.Errorf("checkpoint extra file %q: must be a plain file name, not the manifest's or a partition file's", name)
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// writeFileSynced writes a file through fill, fsyncs it, and returns its
// SHA-256 and fill's count.
func writeFileSynced(path string, fill func(io.Writer) (int, error)) (string, int, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := fill(io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
