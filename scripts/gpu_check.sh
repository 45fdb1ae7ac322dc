#!/usr/bin/env bash
# Issue 25's GPU check: the `cuda` binary's fidelity and speed on a GPU machine lent by the
# device tool (CUDA 13 driver, PyTorch and NVIDIA's pip libraries, no Rust, no network, at most
# 64 MiB carried). docs/gpu.md says how to run it. Not run in CI.
#
#   bash scripts/build_cuda_binary.sh          # here, once: target/gpu-carry/vggfeat.gz
#   bash scripts/gpu_check.sh stage            # here: fixtures, HED weights, 40 images -> carry
#   DRY_RUN=1 bash scripts/gpu_check.sh run    # here: everything but the GPU (CPU stands in)
#   bash scripts/gpu_check.sh run              # there (carry target/gpu-carry): $OUT/gpu_check.md
#
# OUT (default target/gpu-check) gets the report and logs; on the device tool's machine $OUT is
# already set to the folder whose files come back.
#
# `run` (about 3-5 minutes on an H100/H200):
# 1. points the loader at the pip wheels' CUDA 13 and cuDNN libraries and unpacks the binary;
# 2. fidelity on the GPU, in f32 (TF32 is never used by vggfeat's cuda path): the vgg-d-tiny
#    fixture's dense multi-scale fc7 descriptors (Q 256,384, flips, avg and stack) and the real
#    VGG-16 conv weights' pool5 descriptors (HED fixture) against PyTorch's references within
#    1e-4 relative L2 (the tests' bound on the CPU), and each within 1e-4 of vggfeat's own CPU
#    run; bf16 within 1e-2;
# 3. speed: `vggfeat extract --device cuda` (whole process) on 40 Caltech-101 images at Q = 384
#    and at Q = 512 with flips, pool5 of the real VGG-16 conv weights, f32 and bf16, against
#    scripts/gpu_torch_extract.py doing the same job in PyTorch CUDA (f32 with TF32 off, and
#    bf16), same images, same run;
# 4. writes everything to $OUT/gpu_check.md (and the raw logs beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
C=target/gpu-carry
case "${1:-}" in
stage)
    SHARED=${SHARED:-../shared}
    ROOT=$SHARED/datasets/caltech101/101_ObjectCategories
    rm -rf "$C/fixtures" "$C/weights" "$C/images"
    mkdir -p "$C/fixtures/vgg-d-tiny" "$C/fixtures/vgg16-conv-hed" "$C/weights" "$C/images"
    cp -r "$SHARED/fixtures/vgg-d-tiny/"{images,reference.safetensors,weights.safetensors} \
        "$C/fixtures/vgg-d-tiny/"
    cp -r "$SHARED/fixtures/vgg16-conv-hed/"{images,reference.safetensors} "$C/fixtures/vgg16-conv-hed/"
    cp "$SHARED/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors" "$C/weights/"
    # The first 8 images of 5 classes (bench_extract.sh's selection), flattened.
    for c in airplanes Faces Leopards Motorbikes watch; do
        find "$ROOT/$c" -maxdepth 1 -type f | sort | head -n 8 | while read -r f; do
            cp "$f" "$C/images/${c}_$(basename "$f")"
        done
    done
    [ -f "$C/vggfeat.gz" ] || echo "gpu_check: no $C/vggfeat.gz yet: run scripts/build_cuda_binary.sh" >&2
    du -sb "$C" | awk '{printf "gpu_check: %s holds %.1f MiB (a device call carries at most 64)\n", $2, $1 / 1048576}'
    exit 0
    ;;
run) ;;
*)
    echo "usage: bash scripts/gpu_check.sh stage|run" >&2
    exit 2
    ;;
esac

OUT=${OUT:-target/gpu-check}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
PY=${PY:-python3}
DEVICE=cuda
BIN=$(mktemp -d)/vggfeat
gunzip -c "$C/vggfeat.gz" > "$BIN"
chmod +x "$BIN"
if [ -n "${DRY_RUN:-}" ]; then
    # Here: the stand-in driver lets the binary start; the CPU plays the GPU's part.
    DEVICE=cpu
    export LD_LIBRARY_PATH="$C/dry-run:${DRY_LIBS:?DRY_RUN needs DRY_LIBS: the CUDA/cuDNN lib folders}"
else
    SITE=$("$PY" -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))')
    export LD_LIBRARY_PATH="$SITE/nvidia/cu13/lib:$SITE/nvidia/cudnn/lib:${LD_LIBRARY_PATH:-}"
fi
report=$OUT/gpu_check.md
{
    echo "# vggfeat GPU check"
    echo
    echo "- date: $(date -u +%FT%TZ); device: $DEVICE"
    echo "- $("$BIN" --version)"
    if [ "$DEVICE" = cuda ]; then
        echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
    fi
    echo "- PyTorch: $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)')"
    echo
} > "$report"

# 2. Fidelity.
fx=$C/fixtures
extract() { # store, weights, images, device, precision, extra args...
    local store=$1 w=$2 imgs=$3 dev=$4 prec=$5
    shift 5
    rm -rf "$store"
    "$BIN" extract --quiet --scales 256,384 -w "$w" --device "$dev" --precision "$prec" \
        -o "$store" "$@" "$imgs"
    for how in avg stack; do
        "$BIN" export --aggregate "$how" --csv "$store.$how.csv" "$store" > /dev/null
    done
}
for prec in f32 bf16; do
    extract "$OUT/tiny-$DEVICE-$prec" "$fx/vgg-d-tiny/weights.safetensors" "$fx/vgg-d-tiny/images" "$DEVICE" "$prec"
    extract "$OUT/hed-$DEVICE-$prec" "$C/weights/vgg16_conv_hed.safetensors" "$fx/vgg16-conv-hed/images" \
        "$DEVICE" "$prec" --layer pool5
done
extract "$OUT/tiny-cpu-f32" "$fx/vgg-d-tiny/weights.safetensors" "$fx/vgg-d-tiny/images" cpu f32
extract "$OUT/hed-cpu-f32" "$C/weights/vgg16_conv_hed.safetensors" "$fx/vgg16-conv-hed/images" cpu f32 \
    --layer pool5
"$PY" - "$OUT" "$fx" "$DEVICE" >> "$report" <<'PY'
import csv, sys
import numpy as np
from safetensors.numpy import load_file
out, fx, dev = sys.argv[1:]
def rows(p):
    with open(p) as f:
        r = csv.reader(f)
        next(r)
        return {row[0]: np.array([float(v) for v in row[2:]], np.float64) for row in r}
def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
print("## Fidelity\n")
print("Largest relative L2 error over the 3 images and both aggregations (avg, stack), Q 256,384 with flips.\n")
print("| net | run | against | largest | bound | |")
print("| --- | --- | --- | --: | --: | --- |")
ok = True
for net, name in [("tiny", "vgg-d-tiny fc7"), ("hed", "VGG-16 conv (HED) pool5")]:
    ref = load_file(f"{fx}/{'vgg-d-tiny' if net == 'tiny' else 'vgg16-conv-hed'}/reference.safetensors")
    for prec, bound in [("f32", 1e-4), ("bf16", 1e-2)]:
        for against in ["PyTorch reference", "vggfeat cpu f32"]:
            worst = 0.0
            for how in ["avg", "stack"]:
                got = rows(f"{out}/{net}-{dev}-{prec}.{how}.csv")
                cpu = rows(f"{out}/{net}-cpu-f32.{how}.csv")
                for i in range(3):
                    want = ref[f"img{i}.{how}"].astype(np.float64) if against.startswith("PyTorch") else cpu[f"{i}.png"]
                    worst = max(worst, rel(got[f"{i}.png"], want))
            good = worst <= bound
            ok &= good
            print(f"| {name} | {dev} {prec} | {against} | {worst:.2e} | {bound:.0e} | {'ok' if good else 'FAILED'} |")
print(f"\nFidelity: {'all within bounds' if ok else 'FAILED'}\n")
PY

# 3. Speed (the dry run times 4 of the images: it checks the code, not the speed).
W=$C/weights/vgg16_conv_hed.safetensors
IMAGES=$C/images
if [ -n "${DRY_RUN:-}" ]; then
    IMAGES=$(mktemp -d)
    find "$C/images" -type f | sort | head -n 4 | xargs -I{} ln -s "$(pwd)/{}" "$IMAGES/"
fi
timed() { # name, command...
    local name=$1
    shift
    /usr/bin/time -f "$name %e %M" -a -o "$OUT/times" "$@" > "$OUT/$name.log" 2>&1
}
rm -f "$OUT/times"
for q in 384 512; do
    for prec in f32 bf16; do
        rm -rf "$OUT/speed-store"
        timed "vggfeat-$prec-q$q" "$BIN" extract "$IMAGES" --scales "$q" --layer pool5 \
            --device "$DEVICE" --precision "$prec" -w "$W" -o "$OUT/speed-store"
        timed "pytorch-$prec-q$q" "$PY" scripts/gpu_torch_extract.py "$IMAGES" "$W" --scale "$q" \
            --device "$DEVICE" --precision "$prec" --out "$OUT/torch-$prec-q$q.npy"
    done
done
"$PY" - "$OUT/times" "$(find -L "$IMAGES" -type f | wc -l)" >> "$report" <<'PY'
import sys
times, n = sys.argv[1], int(sys.argv[2])
t = {}
for line in open(times):
    name, wall, kib = line.split()
    t[name] = (float(wall), int(kib) / 1024)
print("## Speed\n")
print(f"Whole processes on {n} Caltech-101 images (decode, isotropic rescale, the conv body on each "
      "image and its flip, pool5's spatial mean), real VGG-16 conv weights; one run each.\n")
print("| Q | precision | vggfeat s | PyTorch s | vggfeat / PyTorch | peak RSS MiB, vggfeat / PyTorch |")
print("| --: | --- | --: | --: | --: | --: |")
for q in (384, 512):
    for p in ("f32", "bf16"):
        a, b = t.get(f"vggfeat-{p}-q{q}"), t.get(f"pytorch-{p}-q{q}")
        if a and b:
            print(f"| {q} | {p} | {a[0]:.1f} | {b[0]:.1f} | **{b[0] / a[0]:.2f}x** | {a[1]:.0f} / {b[1]:.0f} |")
PY
# Both computed the same descriptors (the JPEG decoders differ by a grey level here and there,
# which moves f32 descriptors by about 1e-3 to 1e-2 on the CPU).
"$BIN" export --raw --csv "$OUT/speed-store.csv" "$OUT/speed-store" > /dev/null
"$PY" - "$OUT" >> "$report" <<'PY'
import csv, sys
import numpy as np
out = sys.argv[1]
with open(f"{out}/speed-store.csv") as f:
    r = csv.reader(f)
    next(r)
    got = dict((row[0], np.array([float(v) for v in row[2:]])) for row in r)
a = np.stack([got[k] for k in sorted(got)])
b = np.load(f"{out}/torch-bf16-q512.npy").astype(np.float64)
e = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
print(f"\nvggfeat bf16 against PyTorch bf16 at Q = 512, relative L2 per image: median {np.median(e):.1e}, "
      f"largest {e.max():.1e} ({len(e)} images)")
PY
cat "$report"
