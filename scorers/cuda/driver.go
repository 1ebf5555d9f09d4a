package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// cuResult is the driver API's CUresult; 0 is CUDA_SUCCESS.
type cuResult int32

// Device attributes (CUdevice_attribute) read by Open.
const (
	attrComputeCapabilityMajor = 75
	attrComputeCapabilityMinor = 76
)

// cuStreamNonBlocking is CU_STREAM_NON_BLOCKING: the stream does not wait
// for the legacy default stream.
const cuStreamNonBlocking = 1

// driverAPI holds the CUDA driver functions the package calls, by the
// names libcuda.so.1 exports (the _v2 entry points are what cuda.h maps the
// plain names to).
type driverAPI struct {
	cuInit                    func(flags uint32) cuResult
	cuDriverGetVersion        func(v *int32) cuResult
	cuDeviceGetCount          func(n *int32) cuResult
	cuDeviceGet               func(dev *int32, ordinal int32) cuResult
	cuDeviceGetName           func(name *byte, n int32, dev int32) cuResult
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) cuResult
	cuDeviceTotalMem          func(bytes *uintptr, dev int32) cuResult
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) cuResult
	cuDevicePrimaryCtxRelease func(dev int32) cuResult
	cuCtxSetCurrent           func(ctx uintptr) cuResult
	cuMemAlloc                func(p *uint64, bytes uintptr) cuResult
	cuMemFree                 func(p uint64) cuResult
	cuMemAllocHost            func(p *unsafe.Pointer, bytes uintptr) cuResult
	cuMemFreeHost             func(p unsafe.Pointer) cuResult
	cuMemcpyHtoD              func(dst uint64, src unsafe.Pointer, n uintptr) cuResult
	cuMemcpyHtoDAsync         func(dst uint64, src unsafe.Pointer, n uintptr, stream uintptr) cuResult
	cuMemcpyDtoHAsync         func(dst unsafe.Pointer, src uint64, n uintptr, stream uintptr) cuResult
	cuStreamCreate            func(s *uintptr, flags uint32) cuResult
	cuStreamDestroy           func(s uintptr) cuResult
	cuStreamSynchronize       func(s uintptr) cuResult
	cuModuleLoadData          func(m *uintptr, image unsafe.Pointer) cuResult
	cuModuleUnload            func(m uintptr) cuResult
	cuModuleGetFunction       func(f *uintptr, m uintptr, name string) cuResult
	cuLaunchKernel            func(f uintptr, gx, gy, gz, bx, by, bz, sharedBytes uint32, stream uintptr, params unsafe.Pointer, extra unsafe.Pointer) cuResult
	cuGetErrorName            func(r cuResult, s **byte) cuResult
}

func (a *driverAPI) symbols() []symbol {
	return []symbol{
		{&a.cuInit, "cuInit"},
		{&a.cuDriverGetVersion, "cuDriverGetVersion"},
		{&a.cuDeviceGetCount, "cuDeviceGetCount"},
		{&a.cuDeviceGet, "cuDeviceGet"},
		{&a.cuDeviceGetName, "cuDeviceGetName"},
		{&a.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{&a.cuDeviceTotalMem, "cuDeviceTotalMem_v2"},
		{&a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&a.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&a.cuMemAlloc, "cuMemAlloc_v2"},
		{&a.cuMemFree, "cuMemFree_v2"},
		{&a.cuMemAllocHost, "cuMemAllocHost_v2"},
		{&a.cuMemFreeHost, "cuMemFreeHost"},
		{&a.cuMemcpyHtoD, "cuMemcpyHtoD_v2"},
		{&a.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
		{&a.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&a.cuStreamCreate, "cuStreamCreate"},
		{&a.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&a.cuStreamSynchronize, "cuStreamSynchronize"},
		{&a.cuModuleLoadData, "cuModuleLoadData"},
		{&a.cuModuleUnload, "cuModuleUnload"},
		{&a.cuModuleGetFunction, "cuModuleGetFunction"},
		{&a.cuLaunchKernel, "cuLaunchKernel"},
		{&a.cuGetErrorName, "cuGetErrorName"},
	}
}

// check turns a CUresult into an error naming the call.
func (a *driverAPI) check(r cuResult, what string) error {
	if r == 0 {
		return nil
	}
	name := fmt.Sprintf("CUresult %d", int32(r))
	var p *byte
	if a.cuGetErrorName(r, &p) == 0 && p != nil {
		name = goString(p)
	}
	return fmt.Errorf("%s: %s", what, name)
}

// goString copies the NUL-terminated C string at p.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// Options configures Open. The zero value opens GPU 0 and searches the
// usual places for the libraries.
type Options struct {
	// LibraryDir is the directory holding libcublas and libnvrtc. Empty
	// means the dynamic loader's path, then $RECSTREAM_CUDA_LIB_DIR,
	// $CUDA_HOME, /usr/local/cuda and the nvidia-* Python wheels.
	LibraryDir string
	// Ordinal is the GPU to use (0 = the first).
	Ordinal int
}

// Device is an open GPU: the driver, cuBLAS and NVRTC loaded, and the
// device's primary context retained. A Device may be used from any
// goroutine; each call makes its context current on the OS thread it runs
// on.
type Device struct {
	drv  driverAPI
	blas cublasAPI
	rtc  nvrtcAPI
	mem  cMemory

	ordinal  int32
	ctx      uintptr
	name     string
	ccMajor  int
	ccMinor  int
	totalMem uintptr
	driver   int32
	libs     []string

	mu     sync.Mutex
	closed bool
}

// Open loads the CUDA libraries and opens the GPU of opts.Ordinal. Errors
// wrap ErrLibraryNotFound when a library is missing (for example
// "libcuda.so.1 not found ..." on a machine without the NVIDIA driver) and
// ErrNoDevice when the driver sees no GPU.
func Open(opts Options) (*Device, error) {
	d := &Device{ordinal: int32(opts.Ordinal)}
	drv, err := openDriver()
	if err != nil {
		return nil, err
	}
	if err := bind(drv, d.drv.symbols()); err != nil {
		return nil, err
	}
	if r := d.drv.cuInit(0); r != 0 {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, d.drv.check(r, "cuInit"))
	}
	var count int32
	if err := d.drv.check(d.drv.cuDeviceGetCount(&count), "cuDeviceGetCount"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	if int(d.ordinal) >= int(count) || d.ordinal < 0 {
		return nil, fmt.Errorf("%w: GPU %d asked for, the driver sees %d", ErrNoDevice, d.ordinal, count)
	}
	blas, err := openToolkitLibrary("libcublas", opts.LibraryDir, "libcudart", "libcublasLt")
	if err != nil {
		return nil, err
	}
	if err := bind(blas, d.blas.symbols()); err != nil {
		return nil, err
	}
	rtc, err := openToolkitLibrary("libnvrtc", opts.LibraryDir, "libnvrtc-builtins")
	if err != nil {
		return nil, err
	}
	if err := bind(rtc, d.rtc.symbols()); err != nil {
		return nil, err
	}
	if d.mem, err = openCMemory(); err != nil {
		return nil, err
	}
	d.libs = []string{drv.path, blas.path, rtc.path}

	var dev int32
	if err := d.drv.check(d.drv.cuDeviceGet(&dev, d.ordinal), "cuDeviceGet"); err != nil {
		return nil, err
	}
	d.ordinal = dev
	name := make([]byte, 256)
	if err := d.drv.check(d.drv.cuDeviceGetName(&name[0], int32(len(name)), dev), "cuDeviceGetName"); err != nil {
		return nil, err
	}
	d.name = goString(&name[0])
	var major, minor int32
	if err := errors.Join(
		d.drv.check(d.drv.cuDeviceGetAttribute(&major, attrComputeCapabilityMajor, dev), "cuDeviceGetAttribute(major)"),
		d.drv.check(d.drv.cuDeviceGetAttribute(&minor, attrComputeCapabilityMinor, dev), "cuDeviceGetAttribute(minor)"),
		d.drv.check(d.drv.cuDeviceTotalMem(&d.totalMem, dev), "cuDeviceTotalMem"),
		d.drv.check(d.drv.cuDriverGetVersion(&d.driver), "cuDriverGetVersion"),
	); err != nil {
		return nil, err
	}
	d.ccMajor, d.ccMinor = int(major), int(minor)
	if err := d.drv.check(d.drv.cuDevicePrimaryCtxRetain(&d.ctx, dev), "cuDevicePrimaryCtxRetain"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	return d, nil
}

// Name is the GPU's name, for example "NVIDIA H100 80GB HBM3".
func (d *Device) Name() string { return d.name }

// ComputeCapability is the GPU's compute capability (9, 0 for an H100).
func (d *Device) ComputeCapability() (major, minor int) { return d.ccMajor, d.ccMinor }

// TotalMemory is the GPU's memory in bytes.
func (d *Device) TotalMemory() uint64 { return uint64(d.totalMem) }

// Libraries lists the paths of the loaded driver, cuBLAS and NVRTC.
func (d *Device) Libraries() []string { return append([]string(nil), d.libs...) }

// String describes the device for logs.
func (d *Device) String() string {
	return fmt.Sprintf("%s (sm_%d%d, %d MiB, driver %d.%d)", d.name, d.ccMajor, d.ccMinor,
		d.totalMem>>20, d.driver/1000, d.driver%1000/10)
}

// do runs fn with the device's context current on a locked OS thread.
func (d *Device) do(fn func() error) error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return errors.New("cuda: device is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.drv.check(d.drv.cuCtxSetCurrent(d.ctx), "cuCtxSetCurrent"); err != nil {
		return err
	}
	return fn()
}

// Close releases the primary context. Every TopKScorer of the device must
// be closed first. Calling Close again is harmless.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.drv.check(d.drv.cuDevicePrimaryCtxRelease(d.ordinal), "cuDevicePrimaryCtxRelease")
}
