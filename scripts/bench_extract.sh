#!/usr/bin/env bash
# The whole `vggfeat extract` process against an OpenVINO loop doing the same job, on real
# Caltech-101 images with the real VGG-16 conv weights: decode, isotropic rescale to Q = 256,
# 384 and 512, the conv body on each image and its flip, the flip-averaged spatial mean of pool5
# (scripts/ov_extract.py is the OpenVINO side). vggfeat runs in f32 and bf16, OpenVINO with
# INFERENCE_PRECISION_HINT=f32 and with its default (bf16 on a CPU with AVX512-BF16); each is
# timed as a whole process (/usr/bin/time: wall seconds, peak RSS), in rounds that take the
# four in turn. Also prints vggfeat's end-to-end rate as a share of its network-only rate, and
# how far OpenVINO's descriptors are from vggfeat's.
#
#   bash scripts/bench_extract.sh                 # 3 classes x 8 images, 2 rounds
#   CLASSES=airplanes,Faces LIMIT=16 ROUNDS=3 DECODE_THREADS=2 bash scripts/bench_extract.sh
#   BENCH_PY=/path/to/python bash scripts/bench_extract.sh   # a Python with torch, openvino
#
# Not run in CI (about 10 minutes on 2 cores with the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-../shared/datasets/caltech101/101_ObjectCategories}
W=${WEIGHTS:-../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors}
CLASSES=${CLASSES:-airplanes,Faces,Leopards}
LIMIT=${LIMIT:-8}
SCALES=${SCALES:-256,384,512}
ROUNDS=${ROUNDS:-2}
DECODE_THREADS=${DECODE_THREADS:-1}
BENCH_PY=${BENCH_PY:-}
[ -n "$BENCH_PY" ] || BENCH_PY=$(bash scripts/bench_venv.sh)
cargo build --release -q
BIN=target/release/vggfeat
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MODEL=target/bench-vgg16-conv-hed.onnx
[ -f "$MODEL" ] || "$BENCH_PY" scripts/ov_extract.py --export "$W" "$MODEL" 2>/dev/null
sel=(--classes "$CLASSES" --limit-per-class "$LIMIT")
timed() { # name, command...: appends "name wall_s peak_kib" to $work/times, output to $work/name.log
  local name=$1
  shift
  /usr/bin/time -f "$name %e %M" -a -o "$work/times" "$@" >"$work/$name.log" 2>&1
}
for r in $(seq "$ROUNDS"); do
  echo "== round $r" >&2
  for p in f32 bf16; do
    rm -rf "$work/store-$p"
    timed "vggfeat-$p" "$BIN" extract "$ROOT" "${sel[@]}" --scales "$SCALES" --layer pool5 \
      --precision "$p" --decode-threads "$DECODE_THREADS" -w "$W" -o "$work/store-$p"
    grep -h "images/s end to end" "$work/vggfeat-$p.log" | tee -a "$work/rates" >&2
  done
  for p in f32 default; do
    timed "openvino-$p" "$BENCH_PY" scripts/ov_extract.py "$ROOT" "$MODEL" "${sel[@]}" \
      --scales "$SCALES" --precision "$p" --out "$work/ov-$p.npy"
    tail -n 1 "$work/openvino-$p.log" >&2
  done
done
"$BIN" export "$work/store-f32" --raw --csv "$work/raw-f32.csv" >/dev/null
"$BIN" export "$work/store-bf16" --raw --csv "$work/raw-bf16.csv" >/dev/null
for p in f32 default; do
  "$BENCH_PY" scripts/ov_extract.py "$ROOT" "$MODEL" "${sel[@]}" --scales "$SCALES" \
    --compare-npy "$work/ov-$p.npy" --compare "$work/raw-f32.csv" --label "OpenVINO $p" \
    --what "vggfeat f32" >&2
done
"$BENCH_PY" scripts/ov_extract.py "$ROOT" "$MODEL" "${sel[@]}" --scales "$SCALES" \
  --compare-npy "$work/ov-f32.npy" --compare "$work/raw-bf16.csv" --label "OpenVINO f32" \
  --what "vggfeat bf16" >&2
"$BENCH_PY" - "$work/times" "$work/rates" "$CLASSES" "$LIMIT" "$SCALES" "$ROUNDS" "$DECODE_THREADS" <<'PY'
import re, sys
times, rates, classes, limit, scales, rounds, dt = sys.argv[1:]
n = len(classes.split(",")) * int(limit)
best = {}
for line in open(times):
    name, wall, kib = line.split()
    if name not in best or float(wall) < best[name][0]:
        best[name] = (float(wall), int(kib) / 1024)
e2e = [tuple(map(float, m.groups())) for m in
       (re.search(r"\(([\d.]+) images/s end to end, ([\d.]+) images/s in the network", l) for l in open(rates)) if m]
print(f"\n{n} Caltech-101 images ({classes}, {limit} each), Q = {scales} with flips, pool5 of the real "
      f"VGG-16 conv weights; whole processes, best of {rounds} rounds; vggfeat --decode-threads {dt}")
print("| process | wall s | images/s | peak RSS MiB |")
print("| --- | --: | --: | --: |")
for k in ["vggfeat-f32", "vggfeat-bf16", "openvino-f32", "openvino-default"]:
    if k in best:
        w, m = best[k]
        print(f"| {k} | {w:.1f} | {n / w:.2f} | {m:.0f} |")
for a, b in [("vggfeat-f32", "openvino-f32"), ("vggfeat-bf16", "openvino-default")]:
    if a in best and b in best:
        print(f"{a} / {b}: **{best[b][0] / best[a][0]:.2f}x**")
if e2e:
    shares = [a / b for a, b in e2e]
    print(f"vggfeat end to end as a share of network-only: {min(shares):.1%} to {max(shares):.1%}")
PY
