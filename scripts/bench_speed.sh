#!/usr/bin/env bash
# Network-only speed and peak memory of vggfeat's fast CPU path (f32, bf16, int8) against the CPU
# runtimes a user could pick instead, same machine, same run, same workloads (VGG-16, random
# weights): classic 224x224 at batch 8, dense (fc8 map) at Q = 384 and 512 on Q x Q inputs at
# batch 1; peak RSS for one image + flip at Q = 768.
#
#   PyTorch        2 threads and the malloc tunable that makes it fastest here
#   ONNX Runtime   the same dense VGG-16 exported with torch.onnx.export, CPU provider
#   OpenVINO f32   that ONNX model, INFERENCE_PRECISION_HINT=f32
#   OpenVINO       that ONNX model with its defaults (bf16 on a CPU with AVX512-BF16 or AMX)
#   OpenVINO INT8  NNCF's post-training INT8 quantization of that model (20 calibration inputs)
#
#   bash scripts/bench_speed.sh            # makes a throwaway venv (torch, onnxruntime, openvino)
#   BENCH_PY=/path/to/python bash scripts/bench_speed.sh   # a Python that has them
#   ROUNDS=3 bash scripts/bench_speed.sh   # rounds (default 2); the best of them is kept
#
# Not run in CI (about 15 minutes for 2 rounds on 2 cores). Prints JSON lines, then a table of
# images/s per runtime and the ratios vggfeat f32 / OpenVINO f32, vggfeat bf16 / OpenVINO
# (default) and vggfeat int8 / OpenVINO INT8, and the GEMM limits (`examples/bench_gemm.rs`) with each vggfeat rate as a share
# of its precision's limit in direct-convolution FLOPs (Winograd does fewer multiplies, so this
# can pass 100 %). Rounds run the runtimes in turn so that they share any drift of the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
PY=${BENCH_PY:-${TORCH_PY:-}}
[ -n "$PY" ] || PY=$(bash scripts/bench_venv.sh)
cargo build --release -q --example bench_net --example bench_gemm
TUNE="glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
./target/release/examples/bench_gemm | tee -a "$out"
for r in $(seq "$ROUNDS"); do
  echo "== round $r" >&2
  ./target/release/examples/bench_net --engine fast | tee -a "$out"
  ./target/release/examples/bench_net --engine fast --precision bf16 | tee -a "$out"
  ./target/release/examples/bench_net --engine fast --precision int8 | tee -a "$out"
  GLIBC_TUNABLES=$TUNE "$PY" scripts/bench_torch.py --threads 2 | tee -a "$out"
  for rt in onnxruntime openvino-f32 openvino openvino-int8; do
    "$PY" scripts/bench_runtimes.py --runtime $rt --threads 2 2>/dev/null | tee -a "$out"
  done
done
./target/release/examples/bench_net --engine fast --peak-q 768 | tee -a "$out"
./target/release/examples/bench_net --engine fast --precision bf16 --peak-q 768 | tee -a "$out"
./target/release/examples/bench_net --engine fast --precision int8 --peak-q 768 | tee -a "$out"
GLIBC_TUNABLES=$TUNE "$PY" scripts/bench_torch.py --threads 2 --peak-q 768 | tee -a "$out"
for rt in onnxruntime openvino-f32 openvino openvino-int8; do
  "$PY" scripts/bench_runtimes.py --runtime $rt --threads 2 --peak-q 768 2>/dev/null | tee -a "$out"
done
"$PY" - "$out" "$ROUNDS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
gemm = {r["gemm"]: r["gflops"] for r in rows if "gemm" in r}
limit = {"f32": gemm.get("vggfeat-f32 limit 96x512x512"), "bf16": gemm.get("vggfeat-bf16 limit 96x512x512")}
best = {}
for r in rows:
    if "workload" in r and "images_per_s" in r:
        k = (r["impl"], r["workload"])
        if k not in best or r["images_per_s"] > best[k]["images_per_s"]:
            best[k] = r
cols = [("vggfeat-Fast", "vggfeat f32"), ("vggfeat-Fast-bf16", "vggfeat bf16"),
        ("vggfeat-Fast-int8", "vggfeat int8"), ("pytorch", "PyTorch"), ("onnxruntime", "ONNX Runtime"),
        ("openvino-f32", "OpenVINO f32"), ("openvino", "OpenVINO default"), ("openvino-int8", "OpenVINO INT8")]
print(f"\nimages/s, best of {sys.argv[2]} rounds; ratios in the same run")
print("| workload | " + " | ".join(c[1] for c in cols) + " | f32 / OV f32 | bf16 / OV default | int8 / OV INT8 | f32 / PyTorch |")
print("| --- | " + " | ".join("--:" for _ in cols) + " | --: | --: | --: | --: |")
for w, label in [("classic224", "224 x 224, batch 8"), ("dense384", "dense Q = 384"), ("dense512", "dense Q = 512")]:
    v = {c: best.get((c, w), {}).get("images_per_s") for c, _ in cols}
    def ratio(a, b):
        return f"**{v[a] / v[b]:.2f}x**" if v[a] and v[b] else "-"
    cells = " | ".join(f"{v[c]:.2f}" if v[c] else "-" for c, _ in cols)
    print(f"| {label} | {cells} | {ratio('vggfeat-Fast', 'openvino-f32')} | {ratio('vggfeat-Fast-bf16', 'openvino')} | {ratio('vggfeat-Fast-int8', 'openvino-int8')} | {ratio('vggfeat-Fast', 'pytorch')} |")
prec = {r["impl"]: r.get("precision") for r in rows if r.get("impl") == "openvino" and "precision" in r}
if prec:
    print(f"\nOpenVINO's default inference precision here: {prec['openvino']}")
if limit["f32"] and limit["bf16"]:
    print(f"GEMM limits (vggfeat micro-kernels, all threads, in cache): f32 {limit['f32']:.0f} GFLOP/s, bf16 {limit['bf16']:.0f} GFLOP/s")
    for impl, p in [("vggfeat-Fast", "f32"), ("vggfeat-Fast-bf16", "bf16")]:
        shares = [f"{w} {100 * best[(impl, w)]['gflops'] / limit[p]:.0f}%" for w in ["classic224", "dense384", "dense512"] if (impl, w) in best]
        print(f"  vggfeat {p}, direct-convolution GFLOP/s as a share of the {p} limit: " + ", ".join(shares))
peaks = {r["impl"]: r["peak_rss_mib"] for r in rows if "peak_rss_mib" in r}
if peaks:
    print("peak RSS at Q=768 (image + flip): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in peaks.items()))
PY
