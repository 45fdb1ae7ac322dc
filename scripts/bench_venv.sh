#!/usr/bin/env bash
# The throwaway Python of the speed benchmarks (bench_speed.sh, bench_extract.sh): a venv at
# $VENV (default target/bench-venv) with PyTorch, torchvision, ONNX, ONNX Runtime, OpenVINO,
# safetensors and Pillow from PyPI, made or completed on first use. Prints its python's path.
#
#   PY=$(bash scripts/bench_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-target/bench-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2
"$VENV/bin/python" -c "import torch, torchvision, onnx, onnxruntime, openvino, safetensors, PIL" \
  2>/dev/null || "$VENV/bin/pip" install -q torch torchvision onnx onnxruntime openvino \
  safetensors pillow >&2
echo "$(pwd)/$VENV/bin/python"
