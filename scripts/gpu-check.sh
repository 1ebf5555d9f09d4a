#!/usr/bin/env bash
# gpu-check.sh: check and measure the scorer's GPU path in one short command
# on a machine with an NVIDIA GPU, from test binaries built beforehand (the
# GPU machine needs no Go toolchain: only the driver, cuBLAS and NVRTC).
#
#   scripts/gpu-check.sh build   # where Go is: writes bin/scorers.test and bin/cuda.test
#   scripts/gpu-check.sh run     # on the GPU machine, from the repository root, with
#                                # bin/scorers.test, bin/cuda.test and .deps/onnxruntime/
#                                # carried over (about 55 MB in all)
#   scripts/gpu-check.sh         # both, on a GPU machine that has Go
#
# run fails if a GPU test skips (no GPU library found): on a GPU machine that
# is a finding, not a pass. Set RECSTREAM_CUDA_LIB_DIR to the directory of
# libcublas/libnvrtc if they are not found. BENCHTIME (default 2s) sets the
# time per benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHTIME=${BENCHTIME:-2s}

build() {
	mkdir -p bin
	go test -c -o bin/scorers.test ./scorers/
	# The CUDA bindings need no cgo: check that they build without it.
	CGO_ENABLED=0 go test -c -o bin/cuda.test ./scorers/cuda/
	ls -l bin/scorers.test bin/cuda.test
}

run() {
	for f in bin/scorers.test bin/cuda.test .deps/onnxruntime/libonnxruntime.so; do
		[[ -e $f ]] || { echo "gpu-check: $f missing (run 'scripts/gpu-check.sh build' where Go is, and carry it)" >&2; exit 1; }
	done
	export ONNXRUNTIME_LIB=${ONNXRUNTIME_LIB:-$PWD/.deps/onnxruntime/libonnxruntime.so}
	if command -v nvidia-smi >/dev/null; then
		nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	else
		echo "gpu-check: nvidia-smi not found"
	fi
	echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT

	echo "== cuda: kernel compiled by NVRTC, GPU top-K against a Go reference"
	(cd scorers/cuda && ../../bin/cuda.test -test.v -test.count=1 -test.run 'Open|Kernel|TopKScorer') 2>&1 | tee -a "$log"
	echo "== scorers: device selection, GPU records and states against CPU, determinism on the GPU"
	(cd scorers && ../bin/scorers.test -test.v -test.count=1 \
		-test.run 'TestScorerDeviceSelection|TestGPUTowerUpdateMatchesGraph|TestScorerGPUMatchesCPU|TestScorerGPUPathWithGoRanker|TestScorerDeterminism') 2>&1 | tee -a "$log"
	if grep -q -- '--- SKIP' "$log"; then
		echo "gpu-check: GPU tests skipped on this machine:" >&2
		grep -B1 -- '--- SKIP' "$log" >&2
		exit 1
	fi
	if grep -q -- '--- FAIL' "$log"; then
		echo "gpu-check: tests failed" >&2
		exit 1
	fi

	echo "== benchmarks: GPU top-K alone, Score end to end on CPU and GPU, and the GPU path's host side alone (refreshes/s)"
	(cd scorers/cuda && ../../bin/cuda.test -test.run '^$' -test.bench 'BenchmarkTopKScorer' -test.benchtime "$BENCHTIME")
	(cd scorers && ../bin/scorers.test -test.run '^$' -test.bench 'BenchmarkScoreDevice|BenchmarkScoreHostSide' -test.benchtime "$BENCHTIME" -test.benchmem)
}

case ${1:-all} in
build) build ;;
run) run ;;
all) build && run ;;
*)
	echo "usage: $0 [build|run|all]" >&2
	exit 2
	;;
esac
