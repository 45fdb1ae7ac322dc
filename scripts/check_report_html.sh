#!/usr/bin/env bash
# report.html in a real browser: extracts a tiny store from real Caltech-101 images with the
# fixture net, runs `vggfeat svm` on it, renders the results folder's report.html in headless
# Chromium (Debian's `chromium`, installed when missing; needs root then) and checks that the
# screenshot is not blank (enough non-white pixels and colours, read with Python's standard
# library). Exits non-zero if any step fails or the page renders blank. Stops only the processes
# it started (Chromium runs under `timeout`, which ends its own process group).
#
#   bash scripts/check_report_html.sh                         # builds the release binary first
#   VGGFEAT=target/debug/vggfeat bash scripts/check_report_html.sh   # CI: the binary it built
#   KEEP=target/report-check bash scripts/check_report_html.sh       # keep report.html + PNG
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SHARED=${SHARED:-$REPO/../shared}
if [ -z "${VGGFEAT:-}" ]; then cargo build --release -q; fi
BIN=$(realpath "${VGGFEAT:-$REPO/target/release/vggfeat}")
PY=${PY:-python3}

if ! command -v chromium >/dev/null 2>&1; then
  echo "check_report_html: installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

WORK=$(mktemp -d -t vggfeat-report.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# A small real dataset: 4 Caltech-101 classes, 8 images each (symlinks).
SRC="$SHARED/datasets/caltech101/101_ObjectCategories"
for class in Faces_easy Motorbikes airplanes watch; do
  mkdir -p "$WORK/data/$class"
  for i in $(seq 1 8); do
    f=$(printf 'image_%04d.jpg' "$i")
    ln -s "$SRC/$class/$f" "$WORK/data/$class/$f"
  done
done
"$BIN" extract --quiet -w "$SHARED/fixtures/vgg-d-tiny/weights.safetensors" --scales 224 \
  -o "$WORK/store" "$WORK/data"
"$BIN" svm -f "$WORK/store" --train-per-class 4 --test-per-class 4 --splits 2 -o "$WORK/results"
PAGE="$WORK/results/report.html"
[ -s "$PAGE" ] || { echo "check_report_html: no report.html in the results folder" >&2; exit 1; }

# Headless Chromium, its own profile folder, at most 2 minutes.
SHOT="$WORK/report.png"
timeout --kill-after=10 120 chromium --headless --no-sandbox --disable-gpu \
  --disable-dev-shm-usage --hide-scrollbars --no-first-run \
  --user-data-dir="$WORK/profile" --screenshot="$SHOT" --window-size=1280,2000 \
  "file://$PAGE" >"$WORK/chromium.log" 2>&1 || {
  echo "check_report_html: chromium failed:" >&2
  tail -20 "$WORK/chromium.log" >&2
  exit 1
}
[ -s "$SHOT" ] || { echo "check_report_html: chromium wrote no screenshot" >&2; exit 1; }

# Not blank: decode the PNG (8-bit RGB/RGBA, the PNG filters by hand) and count.
"$PY" - "$SHOT" <<'PY'
import struct, sys, zlib

def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = head
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG {head}"
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows

w, h, bpp, rows = read_png(sys.argv[1])
colours, inked = set(), 0
for line in rows:
    for x in range(0, len(line), bpp):
        px = line[x:x + 3]
        colours.add(px)
        if min(px) < 230:
            inked += 1
frac = inked / (w * h)
print(f"check_report_html: screenshot {w}x{h}, {len(colours)} colours, "
      f"{100 * frac:.1f} % non-white pixels")
if len(colours) < 32 or frac < 0.02:
    sys.exit("check_report_html: the screenshot is blank")
PY

if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"
  cp "$PAGE" "$SHOT" "$KEEP/"
  echo "check_report_html: kept $KEEP/report.html and $KEEP/report.png"
fi
echo "check_report_html: ok"
