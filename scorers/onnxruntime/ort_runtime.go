package onnxruntime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
	"go.uber.org/zap"
)

// LibraryEnv is the environment variable that names the ONNX Runtime shared
// library when the configuration does not.
const LibraryEnv = "ONNXRUNTIME_LIB"

// libraryRelPath is where scripts/fetch-onnxruntime.sh (make setup) puts the
// library, relative to the repository root.
var libraryRelPath = filepath.Join(".deps", "onnxruntime", "libonnxruntime.so")

// ErrLibraryNotFound is returned (wrapped) by LibraryPath and OpenRuntime
// when no ONNX Runtime shared library can be found.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found")

// LibraryPath returns the ONNX Runtime shared library to load: configured
// when it is set, else $ONNXRUNTIME_LIB, else .deps/onnxruntime/libonnxruntime.so
// in the working directory or the nearest of its parents that has one (so
// that tests and binaries started anywhere in the repository find it). A
// path that is named but does not exist is an error, not a reason to look
// further.
func LibraryPath(configured string) (string, error) {
	for _, named := range []struct{ what, path string }{
		{"library_path", configured},
		{LibraryEnv, os.Getenv(LibraryEnv)},
	} {
		if named.path == "" {
			continue
		}
		if _, err := os.Stat(named.path); err != nil {
			return "", fmt.Errorf("%w: %s names %s: %w (run make setup)", ErrLibraryNotFound, named.what, named.path, err)
		}
		return named.path, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find ONNX Runtime library: %w", err)
	}
	for dir := wd; ; {
		p := filepath.Join(dir, libraryRelPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("%w: library_path and %s are unset and no %s in %s or above it: run make setup",
		ErrLibraryNotFound, LibraryEnv, libraryRelPath, wd)
}

// Runtime is a handle on the process's ONNX Runtime environment. ONNX
// Runtime allows one environment per process, so every Runtime shares it:
// the first OpenRuntime loads the library and creates the environment, the
// last Close destroys it. Sessions must be closed before their Runtime.
type Runtime struct {
	path   string
	log    *zap.Logger
	once   sync.Once
	closed bool
}

// ortEnv counts the open Runtimes. It mirrors the one piece of process-wide
// state ONNX Runtime (and onnxruntime_go) itself keeps, the environment, so
// that independent components (one scorer per partition, tests) can each
// open and close a Runtime without destroying the others' environment.
var ortEnv struct {
	mu   sync.Mutex
	refs int
	path string
}

// OpenRuntime returns a Runtime using the library found by
// LibraryPath(libraryPath). Every Runtime of a process must use the same
// library; asking for another one while a Runtime is open is an error.
func OpenRuntime(libraryPath string, log *zap.Logger) (*Runtime, error) {
	if log == nil {
		log = zap.NewNop()
	}
	path, err := LibraryPath(libraryPath)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve ONNX Runtime library %s: %w", path, err)
	}
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.refs > 0 {
		if ortEnv.path != abs {
			return nil, fmt.Errorf("open ONNX Runtime %s: the process already uses %s (one library per process)", abs, ortEnv.path)
		}
		ortEnv.refs++
		return &Runtime{path: abs, log: log}, nil
	}
	ort.SetSharedLibraryPath(abs)
	// Error level: ORT's warnings (unused initializers and the like) would
	// otherwise go straight to stderr, bypassing the logger.
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("initialise ONNX Runtime from %s: %w", abs, err)
	}
	ortEnv.refs = 1
	ortEnv.path = abs
	log.Info("ONNX Runtime initialised", zap.String("library", abs), zap.String("version", ort.GetVersion()))
	return &Runtime{path: abs, log: log}, nil
}

// LibraryPath returns the absolute path of the loaded library.
func (r *Runtime) LibraryPath() string { return r.path }

// Version returns the ONNX Runtime version string (for example "1.24.1").
func (r *Runtime) Version() string { return ort.GetVersion() }

// Close releases this handle; the last one to close destroys the
// environment. Calling Close more than once is harmless.
func (r *Runtime) Close() error {
	var err error
	r.once.Do(func() {
		ortEnv.mu.Lock()
		defer ortEnv.mu.Unlock()
		r.closed = true
		ortEnv.refs--
		if ortEnv.refs > 0 {
			return
		}
		if e := ort.DestroyEnvironment(); e != nil {
			err = fmt.Errorf("destroy ONNX Runtime environment: %w", e)
		}
		ortEnv.path = ""
	})
	return err
}

// SessionOptions are the knobs of one ONNX Runtime session.
type SessionOptions struct {
	// IntraOpThreads is the number of threads one operator may use; 0 lets
	// ONNX Runtime choose (one per physical core).
	IntraOpThreads int
	// AllowSpinning lets the intra-op threads spin while they wait for
	// work (ONNX Runtime's default). Off, they sleep: on a machine of two
	// cores spinning threads take the CPU from the sinks and the broker
	// (see BenchmarkScoreSpinning for what each costs).
	AllowSpinning bool
}

// NewSession creates a session over the model bytes, with the given input
// and output names in the order Run takes them.
func (r *Runtime) NewSession(model []byte, inputs, outputs []string, opts SessionOptions) (*ort.DynamicAdvancedSession, error) {
	ortEnv.mu.Lock()
	closed := r.closed
	ortEnv.mu.Unlock()
	if closed {
		return nil, errors.New("create ONNX session: runtime is closed")
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create ONNX session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("set intra-op threads %d: %w", opts.IntraOpThreads, err)
		}
	}
	// Keep inter-op parallelism off: the graph is one chain of steps, and a
	// single executor keeps runs reproducible.
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("set inter-op threads: %w", err)
	}
	spin := "0"
	if opts.AllowSpinning {
		spin = "1"
	}
	for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := so.AddSessionConfigEntry(key, spin); err != nil {
			return nil, fmt.Errorf("set session config %s=%s: %w", key, spin, err)
		}
	}
	if err := so.SetLogSeverityLevel(ort.LoggingLevelError); err != nil {
		return nil, fmt.Errorf("set session log level: %w", err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("create ONNX session: %w", err)
	}
	return s, nil
}
