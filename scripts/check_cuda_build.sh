#!/usr/bin/env bash
# Type-checks and lints the `cuda` feature on a machine without a GPU or a CUDA install: nvcc and
# the CUDA headers come from NVIDIA's PyPI wheels in a throwaway venv, so candle-kernels' build
# script can compile its kernels to PTX; `cargo check` and `cargo clippy -D warnings` then run
# with `--features cuda --all-targets`.
#
# What it proves: the CUDA code paths compile and lint against candle's CUDA backend (the PTX
# kernels build for compute capability 9.0, cudarc's bindings resolve). What it does not: that
# anything runs on a GPU (nothing here has one), nor cuDNN at run time (loaded dynamically).
#
#   bash scripts/check_cuda_build.sh        # ~7 min on 2 cores, ~2 GB of wheels (cached)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CUDA_VENV:-target/cuda-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl
SITE=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
CUDA=$(ls -d "$SITE"/nvidia/cu1* | sort | tail -1)
[ -x "$CUDA/bin/nvcc" ] || { echo "check_cuda_build: no nvcc under $CUDA" >&2; exit 1; }
export PATH="$CUDA/bin:$PATH" CUDA_HOME="$CUDA" CUDA_PATH="$CUDA" CUDA_ROOT="$CUDA"
# cudarc knows CUDA versions by name; the newest it accepts stands in for the wheel's. No
# nvidia-smi here: the compute capability is given (9.0, an H100/H200).
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040} CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda-check}
nvcc --version | tail -2
echo "== cargo check --features cuda --all-targets"
cargo check --features cuda --all-targets
echo "== cargo clippy --features cuda --all-targets -- -D warnings"
cargo clippy --features cuda --all-targets -- -D warnings
echo "check_cuda_build: OK"
