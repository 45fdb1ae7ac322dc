#!/usr/bin/env bash
# Builds the `cuda` vggfeat binary on a machine with no GPU, no driver and no CUDA install, to be
# carried to a GPU machine (issue 25's GPU check; the device tool's machines have the driver and
# NVIDIA's pip libraries but no Rust). Not run in CI.
#
#   bash scripts/build_cuda_binary.sh [OUT]     # ~13 min from scratch on 2 cores
#
# candle-core 0.11 turns on cudarc's `dynamic-linking`, so the binary links against libcuda,
# libcudart, cuBLAS(Lt), cuRAND, NVRTC and cuDNN at build time:
# - nvcc and the libraries come from NVIDIA's PyPI wheels in a venv (as check_cuda_build.sh);
#   target/gpu-link gets their unversioned names (libcublas.so -> libcublas.so.13, ...), which
#   the wheels lack.
# - libcuda (the driver) has no wheel: a stand-in is compiled from the names of the driver
#   functions in cudarc's bindings, each returning CUDA_ERROR_STUB_LIBRARY (34), with the
#   driver's soname libcuda.so.1. It only satisfies the linker; the binary loads the real driver
#   on the GPU machine. (Written here because no package ships the stub outside NVIDIA's own
#   apt repository, which these machines cannot reach.)
#
# OUT (default target/gpu-carry) gets vggfeat.gz (stripped and gzipped: the stripped binary is
# about 73 MB, over the 64 MiB a device call carries; gzipped about 21 MB) and dry-run/
# libcuda.so.1 (the stub, for trying the binary here). On the GPU machine: gunzip it and run it
# with LD_LIBRARY_PATH set to the pip wheels' nvidia/cu13/lib and nvidia/cudnn/lib folders.
# Here, with dry-run/ first on LD_LIBRARY_PATH, the CPU paths run and `--device cuda` fails with
# CUDA_ERROR_STUB_LIBRARY.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-target/gpu-carry}")"
VENV=${CUDA_VENV:-target/cuda-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl nvidia-cublas \
    nvidia-curand nvidia-cuda-nvrtc nvidia-cudnn-cu13
SITE=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
CUDA=$(ls -d "$SITE"/nvidia/cu1* | sort | tail -1)
CUDNN="$SITE/nvidia/cudnn"
link="$PWD/target/gpu-link"
mkdir -p "$link" "$out/dry-run"
for so in "$CUDA"/lib/lib{cudart,cublas,cublasLt,curand,nvrtc}.so.* "$CUDNN"/lib/libcudnn.so.*; do
    ln -sfn "$so" "$link/$(basename "$so" | sed 's/\.so\..*/.so/')"
done
bindings=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -1)
{
    echo "/* Link-time stand-in for the CUDA driver: see scripts/build_cuda_binary.sh. */"
    grep -o 'pub unsafe fn cu[A-Za-z0-9_]*(' "$bindings" | sed 's/pub unsafe fn //; s/(//' |
        sort -u | sed 's/.*/int &(void) { return 34; }/'
} > "$link/cuda_stub.c"
cc -shared -fPIC -o "$link/libcuda.so" -Wl,-soname,libcuda.so.1 "$link/cuda_stub.c"
export PATH="$CUDA/bin:$PATH" CUDA_HOME="$CUDA" CUDA_PATH="$CUDA" CUDA_ROOT="$CUDA"
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040} CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/gpu-build} CARGO_PROFILE_RELEASE_DEBUG=false
export RUSTFLAGS="-L native=$link"
nvcc --version | tail -1
cargo build --release --features cuda --bin vggfeat
strip -o "$out/vggfeat" "$CARGO_TARGET_DIR/release/vggfeat"
gzip -f "$out/vggfeat"
cp "$link/libcuda.so" "$out/dry-run/libcuda.so.1"
# The dry run: the binary starts and its CPU path works; the CUDA device is refused by the stub.
export LD_LIBRARY_PATH="$out/dry-run:$CUDA/lib:$CUDNN/lib"
bin="$CARGO_TARGET_DIR/release/vggfeat"
"$bin" --version
fix=../shared/fixtures/vgg-d-tiny
tmp=$(mktemp -d)
"$bin" extract "$fix/images" -w "$fix/weights.safetensors" -q -o "$tmp/cpu" > /dev/null
if "$bin" extract "$fix/images" -w "$fix/weights.safetensors" --device cuda -q \
    -o "$tmp/cuda" > "$tmp/log" 2>&1 || ! grep -q CUDA_ERROR_STUB_LIBRARY "$tmp/log"; then
    echo "build_cuda_binary: expected the stub to refuse the CUDA device:" >&2
    head -3 "$tmp/log" >&2
    exit 1
fi
rm -rf "$tmp"
ls -la "$out"/vggfeat.gz
echo "build_cuda_binary: OK ($out/vggfeat.gz)"
