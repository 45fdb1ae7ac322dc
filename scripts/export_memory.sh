#!/usr/bin/env bash
# Peak memory of `vggfeat export` on a large store: writes a synthetic store of N records of
# dimension D (default 100,000 x 4,096 float32 = 1.6 GB of descriptors, the size of fc7 for a
# mid-sized dataset), then runs each export format under /usr/bin/time -v and prints its maximum
# resident set size. Every format streams the store a chunk at a time, so the peak should not
# grow with N. Run from the repository root: bash scripts/export_memory.sh [N] [D]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
d=${2:-4096}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --bin vggfeat --example synthetic_store
echo "== synthetic store: $n records x $d floats"
target/release/examples/synthetic_store "$work/store" "$n" "$d"
du -sh "$work/store" | sed 's/^/store size: /'
rss() { # label, command...
  local label=$1; shift
  /usr/bin/time -v "$@" 2> "$work/time.txt" >/dev/null || { cat "$work/time.txt"; exit 1; }
  local kb wall
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  printf '%-12s peak RSS %7.1f MiB   wall %s\n' "$label" "$(echo "$kb / 1024" | bc -l)" "$wall"
}
v=target/release/vggfeat
rss parquet $v export "$work/store" --parquet "$work/out.parquet"
rss npy-shards $v export "$work/store" --npy-shards "$work/shards" --rows 25000
rss npy $v export "$work/store" --npy "$work/out.npy"
rss csv $v export "$work/store" --csv "$work/out.csv"
ls -la "$work/out.parquet" "$work/out.npy" "$work/shards" | sed 's/^/  /'
