#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library (CPU) into .deps/onnxruntime/ and
# checks its checksum. The npm package onnxruntime-node ships the library for
# Linux x64; `npm pack` downloads the tarball without running its install
# script (which would try to download CUDA libraries from elsewhere).
set -euo pipefail

VERSION=1.24.1
TARBALL_SHA256=57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772
LIB_SHA256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.deps/onnxruntime"
lib="$dest/libonnxruntime.so.$VERSION"

if [ -f "$lib" ] && echo "$LIB_SHA256  $lib" | sha256sum -c --status; then
  echo "$lib"
  exit 0
fi

mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-node@$VERSION" >/dev/null)
echo "$TARBALL_SHA256  $work/onnxruntime-node-$VERSION.tgz" | sha256sum -c --quiet
tar -xzf "$work/onnxruntime-node-$VERSION.tgz" -C "$work" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
echo "$LIB_SHA256  $work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --quiet
mv "$work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib"
ln -sf "libonnxruntime.so.$VERSION" "$dest/libonnxruntime.so"
echo "$lib"
