#!/usr/bin/env bash
# Benchmarks of the Python package (scripts/bench_python.py), each in one run on this machine:
#  1. speed: vggfeat.Extractor.describe against the command line's extract (images/s) and
#     against timm's forward_features + torchvision preprocessing with the same conv weights;
#  2. memory: peak RSS of Store.to_numpy on a synthetic 100,000 x 4,096 store (1.6 GB).
# The package is built in release into the benchmark venv (scripts/bench_venv.sh, plus timm).
#
#   bash scripts/bench_python.sh                     # 3 classes x 8 images, Q 256,384,512, 2 rounds
#   LIMIT=16 ROUNDS=3 N=100000 D=4096 bash scripts/bench_python.sh
#
# Not run in CI (about 10 minutes on 2 cores with the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-../shared/datasets/caltech101/101_ObjectCategories}
W=${WEIGHTS:-../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors}
PY=${BENCH_PY:-$(bash scripts/bench_venv.sh)}
"$PY" -c "import timm" 2>/dev/null || "$PY" -m pip install -q timm >&2
"$PY" -m pip install -q ./python >&2
cargo build --release -q --bin vggfeat --example synthetic_store
echo "== speed"
"$PY" scripts/bench_python.py speed --bin target/release/vggfeat --weights "$W" --root "$ROOT" \
  --classes "${CLASSES:-airplanes,Faces,Leopards}" --limit "${LIMIT:-8}" \
  --scales "${SCALES:-256,384,512}" --rounds "${ROUNDS:-2}"
echo "== memory"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/synthetic_store "$work/store" "${N:-100000}" "${D:-4096}"
"$PY" scripts/bench_python.py memory "$work/store"
