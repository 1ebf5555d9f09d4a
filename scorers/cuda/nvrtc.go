package cuda

import (
	"fmt"
	"strings"
	"unsafe"
)

// nvrtcAPI holds the NVRTC functions the package calls.
type nvrtcAPI struct {
	version           func(major, minor *int32) int32
	createProgram     func(prog *uintptr, src *byte, name *byte, numHeaders int32, headers, includeNames unsafe.Pointer) int32
	compileProgram    func(prog uintptr, numOptions int32, options unsafe.Pointer) int32
	getProgramLogSize func(prog uintptr, size *uintptr) int32
	getProgramLog     func(prog uintptr, log *byte) int32
	getPTXSize        func(prog uintptr, size *uintptr) int32
	getPTX            func(prog uintptr, ptx *byte) int32
	getCUBINSize      func(prog uintptr, size *uintptr) int32
	getCUBIN          func(prog uintptr, cubin *byte) int32
	destroyProgram    func(prog *uintptr) int32
	getErrorString    func(r int32) string
}

func (a *nvrtcAPI) symbols() []symbol {
	return []symbol{
		{&a.version, "nvrtcVersion"},
		{&a.createProgram, "nvrtcCreateProgram"},
		{&a.compileProgram, "nvrtcCompileProgram"},
		{&a.getProgramLogSize, "nvrtcGetProgramLogSize"},
		{&a.getProgramLog, "nvrtcGetProgramLog"},
		{&a.getPTXSize, "nvrtcGetPTXSize"},
		{&a.getPTX, "nvrtcGetPTX"},
		{&a.getCUBINSize, "nvrtcGetCUBINSize"},
		{&a.getCUBIN, "nvrtcGetCUBIN"},
		{&a.destroyProgram, "nvrtcDestroyProgram"},
		{&a.getErrorString, "nvrtcGetErrorString"},
	}
}

func (a *nvrtcAPI) check(r int32, what string) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", what, a.getErrorString(r))
}

// compiled is a kernel image: a CUBIN for the exact GPU, or PTX that the
// driver compiles when it loads it.
type compiled struct {
	image []byte // NUL-terminated when PTX
	ptx   bool
	arch  string
	log   string
}

// compile compiles the CUDA C source for compute capability major.minor:
// to a CUBIN (sm_XY) when this NVRTC knows the GPU, else to PTX
// (compute_XY) for the driver to finish; a CUBIN avoids the driver's PTX
// JIT, which refuses PTX newer than itself. FMA contraction is off so that
// every float operation rounds as written.
func compile(rtc *nvrtcAPI, mem cMemory, src, name string, major, minor int) (compiled, error) {
	var firstErr error
	for _, target := range []struct {
		arch string
		ptx  bool
	}{
		{fmt.Sprintf("sm_%d%d", major, minor), false},
		{fmt.Sprintf("compute_%d%d", major, minor), true},
	} {
		c, err := compileFor(rtc, mem, src, name, target.arch, target.ptx)
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return compiled{}, firstErr
}

func compileFor(rtc *nvrtcAPI, mem cMemory, src, name, arch string, ptx bool) (out compiled, err error) {
	srcZ := append([]byte(src), 0)
	nameZ := append([]byte(name), 0)
	var prog uintptr
	if err := rtc.check(rtc.createProgram(&prog, &srcZ[0], &nameZ[0], 0, nil, nil), "nvrtcCreateProgram"); err != nil {
		return compiled{}, err
	}
	defer rtc.destroyProgram(&prog)
	opts := []string{"--gpu-architecture=" + arch, "--fmad=false", "--std=c++14"}
	optv, err := mem.cStrings(opts)
	if err != nil {
		return compiled{}, err
	}
	defer mem.free(optv)
	res := rtc.compileProgram(prog, int32(len(opts)), optv)
	var logSize uintptr
	var log string
	if rtc.getProgramLogSize(prog, &logSize) == 0 && logSize > 1 {
		buf := make([]byte, logSize)
		if rtc.getProgramLog(prog, &buf[0]) == 0 {
			log = strings.TrimSpace(strings.TrimRight(string(buf), "\x00"))
		}
	}
	if err := rtc.check(res, "nvrtcCompileProgram "+name+" for "+arch); err != nil {
		if log != "" {
			err = fmt.Errorf("%w: %s", err, log)
		}
		return compiled{}, err
	}
	sizeFn, getFn, what := rtc.getCUBINSize, rtc.getCUBIN, "CUBIN"
	if ptx {
		sizeFn, getFn, what = rtc.getPTXSize, rtc.getPTX, "PTX"
	}
	var size uintptr
	if err := rtc.check(sizeFn(prog, &size), "nvrtcGet"+what+"Size"); err != nil {
		return compiled{}, err
	}
	if size == 0 {
		return compiled{}, fmt.Errorf("nvrtcGet%sSize: empty image for %s", what, arch)
	}
	image := make([]byte, size+1) // +1 keeps PTX NUL-terminated
	if err := rtc.check(getFn(prog, &image[0]), "nvrtcGet"+what); err != nil {
		return compiled{}, err
	}
	return compiled{image: image, ptx: ptx, arch: arch, log: log}, nil
}

// nvrtcVersion returns NVRTC's version ("13.0").
func nvrtcVersion(rtc *nvrtcAPI) string {
	var major, minor int32
	if rtc.version(&major, &minor) != 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", major, minor)
}
