#!/usr/bin/env bash
# Network-only speed and peak memory of vggfeat's fast CPU path against PyTorch, same machine,
# same run, same workloads (VGG-16, random weights): classic 224x224 at batch 8, dense (fc8 map)
# at Q = 384 and 512 on Q x Q inputs at batch 1; peak RSS for one image + flip at Q = 768.
# PyTorch runs with 2 threads and the malloc tunable that makes it fastest here.
#
#   bash scripts/bench_speed.sh            # makes a throwaway venv with torch (~5.6 GB) unless
#   TORCH_PY=/path/to/python bash scripts/bench_speed.sh   # a Python with torch+torchvision
#
# Not run in CI. Prints JSON lines, then a table of images/s, GFLOP/s, % of the measured GEMM
# limit, and the vggfeat / PyTorch ratio. Rounds alternate between the two to share any drift.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
if [ -z "${TORCH_PY:-}" ]; then
  VENV=${VENV:-target/bench-venv}
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null || "$VENV/bin/pip" install -q torch torchvision
  TORCH_PY="$VENV/bin/python"
fi
cargo build --release -q --example bench_net --example bench_gemm
TUNE="glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
out=$(mktemp)
./target/release/examples/bench_gemm | tee -a "$out"
for r in $(seq "$ROUNDS"); do
  ./target/release/examples/bench_net --engine fast | tee -a "$out"
  GLIBC_TUNABLES=$TUNE "$TORCH_PY" scripts/bench_torch.py --threads 2 | tee -a "$out"
done
./target/release/examples/bench_net --engine fast --peak-q 768 | tee -a "$out"
GLIBC_TUNABLES=$TUNE "$TORCH_PY" scripts/bench_torch.py --threads 2 --peak-q 768 | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
limit = next(r["gflops"] for r in rows if r.get("gemm") == "2048^3")
best = {}
for r in rows:
    if "workload" in r and "images_per_s" in r:
        k = (r["impl"], r["workload"])
        if k not in best or r["images_per_s"] > best[k]["images_per_s"]:
            best[k] = r
print(f"\nGEMM limit (gemm crate, 2048^3, 2 threads): {limit:.0f} GFLOP/s; best of {len(rows)} lines")
print(f"{'workload':<12} {'vggfeat img/s':>14} {'GFLOP/s':>8} {'%limit':>7} {'PyTorch img/s':>14} {'GFLOP/s':>8} {'ratio':>6}")
for w in ["classic224", "dense384", "dense512"]:
    v = best.get(("vggfeat-Fast", w)); t = best.get(("pytorch", w))
    if v and t:
        print(f"{w:<12} {v['images_per_s']:>14.3f} {v['gflops']:>8.1f} {100*v['gflops']/limit:>6.0f}% {t['images_per_s']:>14.3f} {t['gflops']:>8.1f} {v['images_per_s']/t['images_per_s']:>6.2f}")
peaks = {r["impl"]: r["peak_rss_mib"] for r in rows if "peak_rss_mib" in r}
if peaks:
    print("peak RSS at Q=768 (image + flip): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in peaks.items()))
PY
