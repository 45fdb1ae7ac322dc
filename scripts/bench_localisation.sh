#!/usr/bin/env bash
# The composite localisation benchmark (issue 26; results/localisation/): Caltech-101 photos
# pasted onto BACKGROUND_Google clutter (examples/composites.rs, seeded), SCR and PCR box heads
# trained on the frozen conv body of the real HED VGG-16 weights, and `vggfeat localise` with
# both protocols, one and several scales, each head alone and the two fused, against the
# baseline that puts the training set's mean box at the image centre. Not run in CI.
#
#   bash scripts/bench_localisation.sh [OUT]
#
# OUT (default results/localisation) gets table.md (every row, with timings), commands.txt
# (every command run, relative to the repository root, the scratch folder written $WORK), and per row the localise output folder's metrics.json and table.md;
# the run folders (metrics.csv, params.json, problems.txt) are copied without their weights.
# Environment: WORK (scratch, default ${TMPDIR:-/tmp}/vggfeat-loc-bench), CALTECH (default
# ../shared/datasets/caltech101/101_ObjectCategories), HED (default
# ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors), COUNTS (composites per class
# in train, val, test; default "30 10 15"), EPOCHS (default 20), TRAIN_ARGS (more `train` flags).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="$(realpath -m "${1:-$root/results/localisation}")"
work="${WORK:-${TMPDIR:-/tmp}/vggfeat-loc-bench}"
caltech="${CALTECH:-$root/../shared/datasets/caltech101/101_ObjectCategories}"
hed="${HED:-$root/../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors}"
read -r ntrain nval ntest <<< "${COUNTS:-30 10 15}"
epochs="${EPOCHS:-20}"
mkdir -p "$work" "$out"
(cd "$root" && cargo build --release --quiet --bin vggfeat --example composites)
tdir="${CARGO_TARGET_DIR:-$root/target}/release"
v="$tdir/vggfeat"
kit="$work/composites"
: > "$out/commands.txt"
run() { # logs the command (machine paths shortened: $ROOT, $WORK), runs it, prints its seconds
    local line="$*"
    line="${line//$work/\$WORK}"
    line="${line//$root\/..\//../}"
    line="${line//$root\//}"
    echo "$line" >> "$out/commands.txt"
    local t0; t0=$(date +%s.%N)
    "$@" > "$work/last.log" 2>&1 || { cat "$work/last.log"; exit 1; }
    echo "$(date +%s.%N) - $t0" | bc
}
rm -rf "$kit"
t=$(run "$tdir/examples/composites" "$caltech" "$kit" "$ntrain" "$nval" "$ntest" 0)
echo "composites: $(ls "$kit/JPEGImages" | wc -l) images in ${t} s"
# The recipe: crop 128 at S = 144 (the paper's 224 / 256 ratio), fc 512, conv body frozen (only
# its forward pass costs), the paper's random-layer init, lr 1e-3, batches of 32, the rate
# divided after 3 epochs without a better validation mean IoU. No dropout: with 240 samples and
# a few hundred steps it only slowed the fit (SCR, 5 epochs: box loss 0.119 with 0.5, 0.089
# without; validation error 0.875 and 0.838).
common=(--task localise --split train --val-split val --init "pretrained:$hed"
    --freeze-through pool5 --fc-width 512 --crop 128 --scale 144 --batch 32 --micro-batch 16
    --lr 0.001 --epochs "$epochs" --patience 3 --dropout 0 --init-scheme paper --no-progress
    ${TRAIN_ARGS:-})
declare -A train_s
for head in scr pcr; do
    rm -rf "$work/$head"
    train_s[$head]=$(run "$v" train "$kit" --regression "$head" "${common[@]}" -o "$work/$head")
    mkdir -p "$out/runs/$head"
    cp "$work/$head"/{metrics.csv,metrics.svg,params.json,problems.txt,boxes.csv} "$out/runs/$head/"
    sed -i "s#$work#\$WORK#g; s#$root/\.\./#../#g; s#$root/##g" "$out/runs/$head"/{params.json,problems.txt}
    echo "$head: trained in ${train_s[$head]} s; $(tail -1 "$work/$head/metrics.csv")"
done
{
    echo "| localiser | protocol | scales | images | gt-class error (%) | seconds |"
    echo "| --- | --- | --- | --: | --: | --: |"
} > "$out/table.md"
row() { # name, protocol, scales, pictures, localise args...
    local name=$1 protocol=$2 scales=$3 pictures=$4; shift 4
    local slug; slug="$(echo "$name" | tr -c 'a-z0-9\n' '-' | tr -s '-' | sed 's/-$//')-$protocol-${scales//,/_}"
    local dir="$work/$slug"
    rm -rf "$dir"
    local s; s=$(run "$v" localise "$kit" --split test --gt-class --protocol "$protocol" \
        --scales "$scales" --no-progress --pictures "$pictures" "$@" -o "$dir")
    local e; e=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); \
print(f\"{m['images']} | {100*m['localisation_error']['gt_class']:.1f}\")" "$dir/metrics.json")
    echo "| $name | $protocol | $scales | $e | $(printf %.1f "$s") |" >> "$out/table.md"
    mkdir -p "$out/rows/$slug"
    cp "$dir"/{metrics.json,table.md} "$out/rows/$slug/"
    sed -i "s#$work#\$WORK#g; s#$root/\.\./#../#g; s#$root/##g" "$out/rows/$slug"/{metrics.json,table.md}
    [ "$pictures" = 0 ] || cp -r "$dir/pictures" "$out/rows/$slug/"
    echo "$name $protocol $scales: $e"
}
# Pictures (the first 4 test composites) for the baseline and the single-scale dense rows.
row "baseline (mean box, centred)" center 144 4 --loc baseline:train
for head in scr pcr; do
    for protocol in center dense; do
        row "$head" "$protocol" 144 "$([ "$protocol" = dense ] && echo 4 || echo 0)" --loc "$work/$head"
        row "$head" "$protocol" 144,176,208 0 --loc "$work/$head"
    done
done
row "scr + pcr" dense 144,176,208 0 --loc "$work/scr" --loc "$work/pcr"
{
    echo
    printf 'Training (%s epochs at most, frozen conv body): scr %.0f s, pcr %.0f s.\n' "$epochs" \
        "${train_s[scr]}" "${train_s[pcr]}"
    echo "Test set: $(wc -l < "$kit/ImageSets/Main/test.txt") composites (photos and backgrounds unseen in training)."
} >> "$out/table.md"
cat "$out/table.md"
