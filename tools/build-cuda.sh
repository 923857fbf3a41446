#!/usr/bin/env bash
# Build `gacha --features cuda` on a machine with no GPU and no system CUDA.
#
# Usage: tools/build-cuda.sh [COMPUTE_CAP]
#   COMPUTE_CAP  CUDA compute capability to compile kernels for (default 80: runs on Ampere and
#                newer, H100/H200 included; 89 = RTX 40xx; 90 = sm_90a code that only H100/H200 load).
#
# What it does (see docs/design.md §13 for why each step is needed):
#   1. installs a pinned CUDA 13.0 toolchain from PyPI wheels into a cache folder OUTSIDE the repo
#      ($GACHA_CUDA_CACHE, default ~/.cache/gacha-cuda-13.0): nvcc, crt, nvvm, CCCL headers, runtime, cuBLAS,
#      cuRAND, NVRTC. 13.0 because the GPU machines run driver 580 (CUDA 13.0): the driver must be
#      at least as new as the nvcc that built the binary;
#   2. makes a link-only libcuda.so stub exporting every driver symbol cudarc declares (the real
#      driver provides libcuda.so.1 at run time) and unversioned .so links for the linker;
#   3. runs `cargo build --release --features cuda` with CUDARC_CUDA_VERSION and CUDA_COMPUTE_CAP;
#   4. prints the binary's path and size and the shared libraries it needs at run time.
# Users with a normal CUDA install just run `cargo build --release --features cuda`.
set -euo pipefail

cap="${1:-80}"
case "$cap" in
    *[!0-9]* | "") echo "build-cuda: COMPUTE_CAP must be a number like 80, 89 or 90, got '$cap'" >&2; exit 2 ;;
esac
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GACHA_CUDA_CACHE:-$HOME/.cache/gacha-cuda-13.0}"
venv="$cache/venv"

# 1. The toolchain, pinned (CUDA 13.0 release of each component).
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cuda="$site/nvidia/cu13"
[ -x "$cuda/bin/nvcc" ] || { echo "build-cuda: nvcc not found under $cuda/bin after install" >&2; exit 2; }

# 2. Linker inputs: unversioned links to the wheel libraries, and a libcuda stub.
linkdir="$cache/link"
mkdir -p "$linkdir"
for lib in cublas cublasLt curand nvrtc cudart; do
    real="$(ls "$cuda/lib/lib$lib.so."* 2>/dev/null | grep -v builtins | head -n 1)"
    [ -n "$real" ] || { echo "build-cuda: lib$lib.so.* missing from $cuda/lib" >&2; exit 2; }
    ln -sf "$real" "$linkdir/lib$lib.so"
done
cudarc_src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-* 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$cudarc_src" ]; then
    (cd "$repo" && cargo fetch -q)
    cudarc_src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-* | sort -V | tail -n 1)"
fi
grep -rhoE '\bpub (unsafe )?fn cu[A-Z][A-Za-z0-9_]*' "$cudarc_src/src/driver/sys/" \
    | sed -E 's/.* fn //' | sort -u | sed -E 's/(.*)/void \1(void) {}/' > "$linkdir/cuda_stub.c"
gcc -shared -fPIC -o "$linkdir/libcuda.so" -Wl,-soname,libcuda.so.1 "$linkdir/cuda_stub.c"

# 3. The build.
export PATH="$cuda/bin:$PATH"
export CUDA_HOME="$cuda" CUDA_PATH="$cuda"
export CUDARC_CUDA_VERSION=13000
export CUDA_COMPUTE_CAP="$cap"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$linkdir"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cuda-sm$cap}"
echo "build-cuda: nvcc $(nvcc --version | sed -n 4p), compute cap $cap, target $CARGO_TARGET_DIR" >&2
(cd "$repo" && cargo build --release --features cuda)

# 4. What came out.
bin="$CARGO_TARGET_DIR/release/gacha"
echo "binary: $bin ($(du -h "$bin" | cut -f1))"
echo "needs at run time (the driver's libcuda.so.1 and, from the same wheels, via LD_LIBRARY_PATH=$cuda/lib):"
readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/  \1/p'
