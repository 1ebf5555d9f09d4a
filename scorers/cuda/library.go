// Package cuda scores users against an item table on an NVIDIA GPU without
// cgo: it loads the CUDA driver (libcuda.so.1), cuBLAS and NVRTC at run time
// with purego, multiplies the users' vectors by the item embeddings with
// cublasSgemm, and masks and ranks the scores with a small kernel compiled
// at run time by NVRTC. It builds with CGO_ENABLED=0, and on a machine
// without a GPU Open fails with an error that says which library or device
// is missing.
//
// ONNX Runtime's CUDA execution provider would need a 230 MB provider
// library plus matching cuDNN; this package needs nothing beyond the driver
// and the two CUDA libraries that every CUDA installation (or PyTorch
// wheel) ships.
package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/ebitengine/purego"
)

// ErrLibraryNotFound is returned (wrapped) by Open when the CUDA driver,
// cuBLAS or NVRTC cannot be loaded: the machine has no GPU stack.
var ErrLibraryNotFound = errors.New("CUDA library not found")

// ErrNoDevice is returned (wrapped) by Open when the driver loads but sees
// no usable GPU.
var ErrNoDevice = errors.New("no CUDA device")

// notFoundError is a missing library: its message starts with the
// library's name, and it matches ErrLibraryNotFound with errors.Is.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrLibraryNotFound }

// LibraryDirEnv names a directory holding libcublas and libnvrtc, searched
// before the usual places when Options.LibraryDir is empty.
const LibraryDirEnv = "RECSTREAM_CUDA_LIB_DIR"

// library is one loaded shared library.
type library struct {
	name   string // what was asked for, for errors
	path   string // what was loaded
	handle uintptr
}

// symbol binds a Go function variable to a C function of a library.
type symbol struct {
	fptr any
	name string
}

// bind resolves every symbol in lib, failing on the first that is missing
// (purego.RegisterLibFunc would panic instead).
func bind(lib library, syms []symbol) error {
	for _, s := range syms {
		addr, err := purego.Dlsym(lib.handle, s.name)
		if err != nil || addr == 0 {
			return fmt.Errorf("%s (%s): symbol %s not found: %v", lib.name, lib.path, s.name, err)
		}
		purego.RegisterFunc(s.fptr, addr)
	}
	return nil
}

// openDriver loads the CUDA driver library, which the NVIDIA driver installs
// on the system library path.
func openDriver() (library, error) {
	var first error
	for _, name := range []string{"libcuda.so.1", "libcuda.so"} {
		h, err := dlopen(name)
		if err == nil {
			return library{name: "libcuda.so.1", path: name, handle: h}, nil
		}
		if first == nil {
			first = err
		}
	}
	return library{}, &notFoundError{fmt.Sprintf("libcuda.so.1 not found (is the NVIDIA driver installed?): %v", first)}
}

// openToolkitLibrary loads a CUDA toolkit library by its base name
// ("libcublas", "libnvrtc"): from dir only when it is set, else from the
// dynamic loader's path and then from the usual install places (the CUDA
// toolkit, conda, the nvidia-* Python wheels PyTorch depends on). Each
// companion (a base name such as "libcublasLt") found beside it is loaded
// first, so that a library outside the loader's path still finds its
// dependencies.
func openToolkitLibrary(base, dir string, companions ...string) (library, error) {
	var tried []string
	var dirs []string
	if dir != "" {
		dirs = []string{dir}
	} else {
		for _, name := range soNames(base) {
			h, err := dlopen(name)
			if err == nil {
				return library{name: base, path: name, handle: h}, nil
			}
			tried = append(tried, name)
		}
		dirs = searchDirs()
	}
	for _, d := range dirs {
		for _, path := range candidates(d, base) {
			for _, c := range companions {
				for _, cp := range candidates(d, c) {
					if _, err := dlopen(cp); err == nil {
						break
					}
				}
			}
			h, err := dlopen(path)
			if err == nil {
				return library{name: base, path: path, handle: h}, nil
			}
			tried = append(tried, fmt.Sprintf("%s (%v)", path, err))
		}
	}
	where := "the loader's path and " + strings.Join(dirs, ", ")
	if dir != "" {
		where = dir
	}
	msg := fmt.Sprintf("%s.so not found in %s", base, where)
	if len(tried) > 0 {
		msg += "; tried " + strings.Join(tried, ", ")
	}
	return library{}, &notFoundError{msg}
}

// soNames lists the names a library is installed under, newest CUDA first.
func soNames(base string) []string {
	names := []string{base + ".so"}
	for _, v := range []string{"13", "12", "11"} {
		names = append(names, base+".so."+v)
	}
	return names
}

// candidates returns the files of dir that are base's shared library:
// base.so, then base.so.<version> files, highest version first.
func candidates(dir, base string) []string {
	var out []string
	if p := filepath.Join(dir, base+".so"); fileExists(p) {
		out = append(out, p)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, base+".so.*"))
	slices.SortFunc(matches, func(a, b string) int { return strings.Compare(b, a) })
	return append(out, matches...)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// searchDirs lists the directories where CUDA libraries are usually
// installed, those named by the environment first.
func searchDirs() []string {
	var dirs []string
	add := func(patterns ...string) {
		for _, p := range patterns {
			matches, _ := filepath.Glob(p)
			slices.Sort(matches)
			slices.Reverse(matches) // newest version first
			for _, m := range matches {
				if !slices.Contains(dirs, m) {
					dirs = append(dirs, m)
				}
			}
		}
	}
	if d := os.Getenv(LibraryDirEnv); d != "" {
		add(d)
	}
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"} {
		if d := os.Getenv(env); d != "" {
			add(filepath.Join(d, "lib64"), filepath.Join(d, "lib"))
		}
	}
	if d := os.Getenv("CONDA_PREFIX"); d != "" {
		add(filepath.Join(d, "lib"))
	}
	arch := map[string]string{"amd64": "x86_64", "arm64": "sbsa"}[runtime.GOARCH]
	add("/usr/local/cuda/lib64",
		"/usr/local/cuda/targets/"+arch+"-linux/lib",
		"/usr/local/cuda-*/lib64",
		"/usr/local/cuda-*/targets/"+arch+"-linux/lib",
		"/usr/lib/"+arch+"-linux-gnu",
		"/usr/lib64")
	// The nvidia-* wheels (what pip install torch brings): nvidia/<pkg>/lib
	// for CUDA 12, nvidia/cu13/lib for CUDA 13.
	var sitePackages []string
	for _, root := range []string{"/usr/local/lib", "/usr/lib", "/opt/conda/lib", os.Getenv("HOME") + "/.local/lib"} {
		sitePackages = append(sitePackages, root+"/python3*/site-packages", root+"/python3*/dist-packages")
	}
	if d := os.Getenv("VIRTUAL_ENV"); d != "" {
		sitePackages = append(sitePackages, d+"/lib/python3*/site-packages")
	}
	sitePackages = append(sitePackages, "/usr/lib/python3/dist-packages")
	for _, sp := range sitePackages {
		add(sp+"/nvidia/cu13/lib", sp+"/nvidia/*/lib")
	}
	return dirs
}

// dlopen loads a shared library with its symbols resolved now and visible to
// the libraries loaded after it. purego reads dlerror in a call separate from
// dlopen's; dlerror's text is per OS thread, so without the lock a goroutine
// that moved threads in between reports the failure with an empty reason.
func dlopen(name string) (uintptr, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL)
}
