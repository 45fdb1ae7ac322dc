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
# in train, val, test; default "250 10 20"), CROP (default 224), SCALE (the training and
# single test scale S; default 240), SCALES (the multi-scale rows; default "240,272,304"),
# CACHE (augmented variants per training image whose frozen conv outputs are cached; default 2),
# LR (default 1e-4), EPOCHS (default 20), PATIENCE (default 10), OPTIMIZER (default adam),
# WEIGHT_DECAY (default 1e-3), FC6_INPUT (default sqrt), TRAIN_ARGS (more `train` flags);
# OPTIMIZER=sgd WEIGHT_DECAY=5e-4 FC6_INPUT=identity EPOCHS=40 COUNTS="250 10 20" is the
# paper's recipe as the first benchmark ran it. The frozen cache is kept in $WORK/cache and shared by the two heads (and later runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="$(realpath -m "${1:-$root/results/localisation}")"
work="${WORK:-${TMPDIR:-/tmp}/vggfeat-loc-bench}"
caltech="${CALTECH:-$root/../shared/datasets/caltech101/101_ObjectCategories}"
hed="${HED:-$root/../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors}"
read -r ntrain nval ntest <<< "${COUNTS:-400 10 20}"
epochs="${EPOCHS:-20}"
optimizer="${OPTIMIZER:-adam}"
weight_decay="${WEIGHT_DECAY:-1e-3}"
fc6_input="${FC6_INPUT:-sqrt}"
crop="${CROP:-224}"
scale="${SCALE:-240}"
scales="${SCALES:-240,272,304}"
cache="${CACHE:-2}"
lr="${LR:-1e-4}"
patience="${PATIENCE:-10}"
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
# The recipe: the conv body frozen, its outputs cached for $cache augmented variants of each
# training image (computed once; each epoch then runs only fc6-fc8), fc 512, the paper's
# random-layer init, batches of 32, the rate divided after $patience epochs without a better
# validation mean IoU (the validation's 80 images make it noisy), no dropout. Two departures from
# the paper's SGD at 1e-3, because fc6 is random here (HED has no fc layers) and HED's pool5 of a
# 224 crop has an L2 norm near 2,500 (caffe input): at 1e-3 the first epoch diverges and every fc6
# unit dies, and at 1e-4 SGD memorises the training composites (81.9 % at best on the test set).
# fc6 takes the square root of pool5 (--fc6-input sqrt) and the optimiser is Adam at 1e-4 with
# weight decay 1e-3 (results/localisation/README.md says what each changes).
common=(--task localise --split train --val-split val --init "pretrained:$hed"
    --freeze-through pool5 --cache-frozen "$cache" --cache-dir "$work/cache" --fc-width 512
    --crop "$crop" --scale "$scale" --batch 32 --micro-batch 32 --lr "$lr" --epochs "$epochs"
    --patience "$patience" --optimizer "$optimizer" --weight-decay "$weight_decay"
    --fc6-input "$fc6_input"
    --dropout 0 --init-scheme paper --no-progress ${TRAIN_ARGS:-})
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
row "baseline (mean box, centred)" center "$scale" 4 --loc baseline:train
for head in scr pcr; do
    for protocol in center dense; do
        row "$head" "$protocol" "$scale" "$([ "$protocol" = dense ] && echo 4 || echo 0)" --loc "$work/$head"
        row "$head" "$protocol" "$scales" 0 --loc "$work/$head"
    done
done
row "scr + pcr" dense "$scale" 0 --loc "$work/scr" --loc "$work/pcr"
row "scr + pcr" dense "$scales" 0 --loc "$work/scr" --loc "$work/pcr"
{
    echo
    printf 'Training (%s, lr %s, weight decay %s, fc6 input %s, %s epochs at most, frozen conv body, %s cached variants per image): scr %.0f s, pcr %.0f s.\n' \
        "$optimizer" "$lr" "$weight_decay" "$fc6_input" "$epochs" "$cache" "${train_s[scr]}" "${train_s[pcr]}"
    echo "Test set: $(wc -l < "$kit/ImageSets/Main/test.txt") composites (photos and backgrounds unseen in training)."
} >> "$out/table.md"
cat "$out/table.md"
