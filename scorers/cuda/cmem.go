package cuda

import (
	"fmt"
	"unsafe"
)

// cMemory allocates memory outside the Go heap (libc calloc/free), for what
// C code reads pointers from: NVRTC's option list and cuLaunchKernel's
// argument list. Go memory must not hold pointers that C reads (the cgo
// pointer rules, which purego follows).
type cMemory struct {
	calloc func(n, size uintptr) unsafe.Pointer
	free   func(p unsafe.Pointer)
}

func openCMemory() (cMemory, error) {
	var m cMemory
	var lastErr error
	for _, name := range []string{"libc.so.6", "libc.so"} {
		h, err := dlopen(name)
		if err != nil {
			lastErr = err
			continue
		}
		err = bind(library{name: "libc", path: name, handle: h}, []symbol{{&m.calloc, "calloc"}, {&m.free, "free"}})
		return m, err
	}
	return m, fmt.Errorf("load libc: %w", lastErr)
}

// alloc returns n zeroed bytes of C memory, or an error when calloc fails.
func (m cMemory) alloc(n int) (unsafe.Pointer, error) {
	p := m.calloc(uintptr(n), 1)
	if p == nil {
		return nil, fmt.Errorf("calloc %d bytes: out of memory", n)
	}
	return p, nil
}

// cStrings copies strs into one block of C memory laid out as a char**: an
// array of pointers, then the NUL-terminated strings they point to. The
// caller frees the block.
func (m cMemory) cStrings(strs []string) (unsafe.Pointer, error) {
	size := 8 * len(strs)
	for _, s := range strs {
		size += len(s) + 1
	}
	block, err := m.alloc(max(size, 1))
	if err != nil {
		return nil, err
	}
	at := 8 * len(strs)
	for i, s := range strs {
		dst := unsafe.Add(block, at)
		copy(unsafe.Slice((*byte)(dst), len(s)), s)
		// A uintptr store: no write barrier looks at the C memory.
		*(*uintptr)(unsafe.Add(block, 8*i)) = uintptr(dst)
		at += len(s) + 1
	}
	return block, nil
}
