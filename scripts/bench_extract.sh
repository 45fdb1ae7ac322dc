#!/usr/bin/env bash
# The whole `vggfeat extract` process against an OpenVINO loop doing the same job, on real
# Caltech-101 images with the real VGG-16 conv weights: decode, isotropic rescale to Q = 256,
# 384 and 512, the conv body on each image and its flip, the flip-averaged spatial mean of pool5
# (scripts/ov_extract.py is the OpenVINO side). vggfeat runs in f32, bf16 and int8; OpenVINO
# with INFERENCE_PRECISION_HINT=f32, with its default (bf16 on a CPU with AVX512-BF16), and as
# the INT8 model NNCF's post-training quantization makes of the same net (calibrated once, not
# timed, on CALIBRATION other images of the same classes). Each is timed as a whole process
# (/usr/bin/time: wall seconds, peak RSS), in rounds that take them in turn. Also prints each
# one's network-only rate, vggfeat's end-to-end rate as a share of it, and how far each
# precision's descriptors are from its own f32 (median and largest relative L2).
#
#   bash scripts/bench_extract.sh                 # 3 classes x 8 images, 2 rounds
#   CLASSES=airplanes,Faces LIMIT=16 ROUNDS=3 DECODE_THREADS=2 bash scripts/bench_extract.sh
#   PRECISIONS="f32 int8" bash scripts/bench_extract.sh   # a subset (vggfeat's and OpenVINO's)
#   BENCH_PY=/path/to/python bash scripts/bench_extract.sh   # a Python with openvino, nncf
#
# Issue 25's int8 runs (40 images, one scale each):
#   CLASSES=airplanes,Faces,Leopards,Motorbikes,watch SCALES=384 bash scripts/bench_extract.sh
#   CLASSES=airplanes,Faces,Leopards,Motorbikes,watch SCALES=512 bash scripts/bench_extract.sh
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
PRECISIONS=${PRECISIONS:-f32 bf16 int8}
CALIBRATION=${CALIBRATION:-20}
BENCH_PY=${BENCH_PY:-}
[ -n "$BENCH_PY" ] || BENCH_PY=$(bash scripts/bench_venv.sh)
"$BENCH_PY" -c "import nncf" 2>/dev/null || "$(dirname "$BENCH_PY")/pip" install -q nncf >&2
cargo build --release -q
BIN=target/release/vggfeat
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MODEL=target/bench-vgg16-conv-hed.onnx
[ -f "$MODEL" ] || "$BENCH_PY" scripts/ov_extract.py --export "$W" "$MODEL" 2>/dev/null
sel=(--classes "$CLASSES" --limit-per-class "$LIMIT")
ov_name() { [ "$1" = bf16 ] && echo default || echo "$1"; } # OpenVINO's bf16 is its default
if [[ " $PRECISIONS " == *" int8 "* ]]; then
  "$BENCH_PY" scripts/ov_extract.py "$ROOT" "$MODEL" "${sel[@]}" --scales "$SCALES" \
    --quantize "$work/int8.xml" --calibration "$CALIBRATION" 2>&1 | grep -v "^\s*$" | tail -n 1 >&2
fi
timed() { # name, command...: appends "name wall_s peak_kib" to $work/times, output to $work/name.log
  local name=$1
  shift
  /usr/bin/time -f "$name %e %M" -a -o "$work/times" "$@" >"$work/$name.log" 2>&1
}
for r in $(seq "$ROUNDS"); do
  echo "== round $r" >&2
  for p in $PRECISIONS; do
    rm -rf "$work/store-$p"
    timed "vggfeat-$p" "$BIN" extract "$ROOT" "${sel[@]}" --scales "$SCALES" --layer pool5 \
      --precision "$p" --decode-threads "$DECODE_THREADS" -w "$W" -o "$work/store-$p"
    grep -h "images/s end to end" "$work/vggfeat-$p.log" | sed "s/^/vggfeat-$p /" |
      tee -a "$work/rates" >&2
  done
  for p in $PRECISIONS; do
    o=$(ov_name "$p")
    timed "openvino-$o" "$BENCH_PY" scripts/ov_extract.py "$ROOT" "$MODEL" "${sel[@]}" \
      --scales "$SCALES" --precision "$o" --int8-model "$work/int8.xml" --out "$work/ov-$o.npy"
    tail -n 1 "$work/openvino-$o.log" | sed "s/^/openvino-$o /" | tee -a "$work/rates" >&2
  done
done
for p in $PRECISIONS; do
  "$BIN" export "$work/store-$p" --raw --csv "$work/raw-$p.csv" >/dev/null
done
# Each side's precisions against its own f32, and the two f32s against each other.
"$BENCH_PY" - "$work" "$PRECISIONS" <<'PY' >>"$work/agree"
import csv, sys
import numpy as np
work, precisions = sys.argv[1], sys.argv[2].split()
def raw(p):
    with open(f"{work}/raw-{p}.csv") as f:
        r = csv.reader(f)
        next(r)
        rows = sorted((row[0], [float(v) for v in row[2:]]) for row in r)
    return np.array([v for _, v in rows], np.float64)
def rel(a, b):
    e = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    return f"median {np.median(e):.1e}, largest {e.max():.1e}"
name = {"bf16": "default"}
if "f32" in precisions:
    for p in precisions:
        if p != "f32":
            print(f"vggfeat {p} against vggfeat f32: {rel(raw(p), raw('f32'))}")
            a, b = (np.load(f"{work}/ov-{name.get(q, q)}.npy").astype(np.float64) for q in (p, "f32"))
            print(f"OpenVINO {name.get(p, p)} against OpenVINO f32: {rel(a, b)}")
PY
if [[ " $PRECISIONS " == *" f32 "* ]]; then
  "$BENCH_PY" scripts/ov_extract.py "$ROOT" "$MODEL" "${sel[@]}" --scales "$SCALES" \
    --compare-npy "$work/ov-f32.npy" --compare "$work/raw-f32.csv" --label "OpenVINO f32" \
    --what "vggfeat f32 (JPEG decoders differ)" 2>>"$work/agree"
fi
"$BENCH_PY" - "$work/times" "$work/rates" "$CLASSES" "$LIMIT" "$SCALES" "$ROUNDS" "$DECODE_THREADS" "$PRECISIONS" <<'PY'
import re, sys
times, rates, classes, limit, scales, rounds, dt, precisions = sys.argv[1:]
n = len(classes.split(",")) * int(limit)
best = {}
for line in open(times):
    name, wall, kib = line.split()
    if name not in best or float(wall) < best[name][0]:
        best[name] = (float(wall), int(kib) / 1024)
net, shares = {}, []
for l in open(rates):
    m = re.search(r"^(\S+) .*\(([\d.]+) images/s end to end, ([\d.]+) images/s in the network", l)
    if m:
        k, e2e, nw = m.group(1), float(m.group(2)), float(m.group(3))
        net[k] = max(net.get(k, 0.0), nw)
        if k.startswith("vggfeat"):
            shares.append(e2e / nw)
print(f"\n{n} Caltech-101 images ({classes}, {limit} each), Q = {scales} with flips, pool5 of the real "
      f"VGG-16 conv weights; whole processes, best of {rounds} rounds; vggfeat --decode-threads {dt}")
print("| process | wall s | images/s | network-only images/s | peak RSS MiB |")
print("| --- | --: | --: | --: | --: |")
ov = {"f32": "f32", "bf16": "default", "int8": "int8"}
names = [f"vggfeat-{p}" for p in precisions.split()] + [f"openvino-{ov[p]}" for p in precisions.split()]
for k in names:
    if k in best:
        w, m = best[k]
        print(f"| {k} | {w:.1f} | {n / w:.2f} | {net.get(k, float('nan')):.2f} | {m:.0f} |")
for p in precisions.split():
    a, b = f"vggfeat-{p}", f"openvino-{ov[p]}"
    if a in best and b in best:
        print(f"{a} / {b}: whole process **{best[b][0] / best[a][0]:.2f}x**, network only "
              f"{net.get(a, float('nan')) / net.get(b, float('nan')):.2f}x")
if shares:
    print(f"vggfeat end to end as a share of network-only: {min(shares):.1%} to {max(shares):.1%}")
PY
cat "$work/agree"
