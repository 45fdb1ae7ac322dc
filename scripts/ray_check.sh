#!/usr/bin/env bash
# The Ray Data recipe of docs/ray.md, run for real: a local Ray (ray.init(num_cpus=2), started
# and stopped by the check itself) maps the fixture images through an actor pool of
# vggfeat.Extractor and compares the rows with the command line's extract + export.
#
#   PY=target/py-venv/bin/python VGGFEAT=target/debug/vggfeat bash scripts/ray_check.sh
#
# PY must have vggfeat installed (pip install ./python); ray is installed into it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-target/py-venv/bin/python}
VGGFEAT=${VGGFEAT:-target/debug/vggfeat}
"$PY" -c "import ray.data" 2>/dev/null || "$PY" -m pip install -q "ray[data]"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Ray keeps its session files under RAY_TMPDIR: inside the work folder, removed with it.
mkdir -p "$WORK/ray"
RAY_TMPDIR="$WORK/ray" "$PY" scripts/ray_check.py "$VGGFEAT" \
  ../shared/fixtures/vgg-d-tiny/weights.safetensors ../shared/fixtures/vgg-d-tiny/images "$WORK"
