#!/usr/bin/env bash
# Fetches NVRTC (the CUDA runtime compiler, no GPU needed) into .deps/nvrtc/
# from the nvidia-cuda-nvrtc wheel on PyPI, and checks its checksum. With it
# the tests of scorers/cuda compile the top-K kernel on a machine without a
# GPU (TestKernelCompiles); without it that test skips, saying so. A GPU
# machine uses its own CUDA installation instead.
set -euo pipefail

VERSION=13.5.37
WHEEL=nvidia_cuda_nvrtc-$VERSION-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl
WHEEL_SHA256=86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.deps/nvrtc"
stamp="$dest/.wheel-sha256"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WHEEL_SHA256" ] && [ -f "$dest/libnvrtc.so.13" ]; then
  echo "$dest"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_12_x86_64 \
  --python-version 3 --dest "$work" "nvidia-cuda-nvrtc==$VERSION"
echo "$WHEEL_SHA256  $work/$WHEEL" | sha256sum -c --quiet
python3 -m zipfile -e "$work/$WHEEL" "$work/x"
mkdir -p "$dest"
cp "$work"/x/nvidia/cu13/lib/libnvrtc*.so* "$dest/"
echo "$WHEEL_SHA256" > "$stamp"
echo "$dest"
