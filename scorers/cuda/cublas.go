package cuda

import (
	"fmt"
	"unsafe"
)

// cuBLAS enums used here.
const (
	cublasOpN = 0 // CUBLAS_OP_N
	cublasOpT = 1 // CUBLAS_OP_T
	// cublasDefaultMath is CUBLAS_DEFAULT_MATH: full float32 products, no
	// TF32 tensor cores (their 10-bit mantissas would move scores by 1e-3).
	cublasDefaultMath = 0
)

// cublasAPI holds the cuBLAS functions the package calls (the v2 API).
type cublasAPI struct {
	create      func(h *uintptr) int32
	destroy     func(h uintptr) int32
	setStream   func(h uintptr, stream uintptr) int32
	setMathMode func(h uintptr, mode int32) int32
	getVersion  func(h uintptr, v *int32) int32
	sgemm       func(h uintptr, transA, transB int32, m, n, k int32, alpha unsafe.Pointer, a uint64, lda int32,
		b uint64, ldb int32, beta unsafe.Pointer, c uint64, ldc int32) int32
}

func (a *cublasAPI) symbols() []symbol {
	return []symbol{
		{&a.create, "cublasCreate_v2"},
		{&a.destroy, "cublasDestroy_v2"},
		{&a.setStream, "cublasSetStream_v2"},
		{&a.setMathMode, "cublasSetMathMode"},
		{&a.getVersion, "cublasGetVersion_v2"},
		{&a.sgemm, "cublasSgemm_v2"},
	}
}

// cublasStatusNames names the cublasStatus_t values.
var cublasStatusNames = map[int32]string{
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

// checkBLAS turns a cublasStatus_t into an error naming the call.
func checkBLAS(status int32, what string) error {
	if status == 0 {
		return nil
	}
	name, ok := cublasStatusNames[status]
	if !ok {
		name = fmt.Sprintf("cublasStatus %d", status)
	}
	return fmt.Errorf("%s: %s", what, name)
}
