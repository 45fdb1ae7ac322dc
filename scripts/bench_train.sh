#!/usr/bin/env bash
# Training-step speed and memory: vggfeat's fast backend (examples/bench_train.rs) against the
# same step in PyTorch (scripts/bench_train_torch.py: same net, crop, batch, loss, dropout and
# SGD), in one run, 2 threads each, for the three cases of issue 24. PyTorch runs twice, in its
# default NCHW layout and channels-last (oneDNN's faster layout here); the ratio is taken
# against the faster of the two. vggfeat's candle engine (the reference, and the trainer before
# the fast backend) is timed too where it takes less than a minute.
#
#   bash scripts/bench_train.sh            # all three cases
#   CASES="A 8 96 32" bash scripts/bench_train.sh
#
# Prints one markdown row per case: ms per step, ratios, peak resident memory (MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$(bash scripts/bench_venv.sh)}
cargo build --release --example bench_train >&2
BIN=target/release/examples/bench_train
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
CASES=${CASES:-"A 8 96 32;D 4 128 16;D 1 224 8"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ms() { grep -o '[0-9.]* ms per step' "$1" | cut -d' ' -f1; }
peak() { grep -o 'peak [0-9]* KB' "$1" | awk '{printf "%.0f", $2 / 1024}'; }
echo "| case | vggfeat fast | vggfeat candle | PyTorch NCHW | PyTorch channels-last | fast vs best PyTorch | peak MiB fast / PyTorch best |"
echo "| --- | --: | --: | --: | --: | --: | --: |"
IFS=';' read -ra cases <<< "$CASES"
for c in "${cases[@]}"; do
  read -r cfg div crop batch <<< "$c"
  /usr/bin/time -f 'peak %M KB' "$BIN" $cfg $div $crop $batch fast > "$tmp/fast" 2>&1
  if [ "$div" -gt 1 ]; then
    "$BIN" $cfg $div $crop $batch candle > "$tmp/candle" 2>&1
    candle=$(ms "$tmp/candle")
  else
    candle="-"
  fi
  /usr/bin/time -f 'peak %M KB' "$PY" scripts/bench_train_torch.py $cfg $div $crop $batch > "$tmp/nchw" 2>&1
  /usr/bin/time -f 'peak %M KB' "$PY" scripts/bench_train_torch.py $cfg $div $crop $batch --channels-last > "$tmp/cl" 2>&1
  f=$(ms "$tmp/fast"); n=$(ms "$tmp/nchw"); l=$(ms "$tmp/cl")
  best=$(python3 -c "print(min($n, $l))")
  bestf=$([ "$(python3 -c "print($n <= $l)")" = True ] && echo nchw || echo cl)
  ratio=$(python3 -c "print(f'{$best / $f:.2f}x')")
  echo "| $cfg /$div crop $crop batch $batch | $f | $candle | $n | $l | **$ratio** | $(peak "$tmp/fast") / $(peak "$tmp/$bestf") |"
done
