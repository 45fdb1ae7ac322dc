#!/usr/bin/env bash
# k-NN speed: `vggfeat neighbours` (exact cosine, blocked GEMM over the streamed store) against
# numpy's matrix-product route (np.load, Q @ X.T, argpartition; scripts/bench_neighbours.py) on
# the same data, in the same run. Not run in CI.
#
#   bash scripts/bench_neighbours.sh [N] [D] [QUERIES] [K]
#
# Defaults: a 100,000 x 4,096 store (examples/synthetic_store.rs: one net, one scale, seeded
# uniform [0, 1) values, as non-negative as fc7; both sides use the L2-normalised descriptors,
# numpy's from `vggfeat export --npy`), 1,000 queries (every N/QUERIES-th id, themselves in the
# store) and k = 10. vggfeat runs with --include-self so that both sides answer the same
# question. Each side is one process under /usr/bin/time -v: wall time and peak RSS; numpy's
# load and search times are printed apart. Then the recall@k of vggfeat's answer against
# numpy's (1.0: the same neighbours). Environment: WORK (scratch folder, default
# ${TMPDIR:-/tmp}/vggfeat-nn-bench), CARGO_TARGET_DIR (as usual), ROUNDS (default 1, the best
# is kept). A throwaway venv with numpy is made in WORK.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
n=${1:-100000}
d=${2:-4096}
nq=${3:-1000}
k=${4:-10}
rounds=${ROUNDS:-1}
work="${WORK:-${TMPDIR:-/tmp}/vggfeat-nn-bench}"
mkdir -p "$work"
if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet numpy
fi
py="$work/venv/bin/python"
"$py" -c 'import numpy; print("numpy", numpy.__version__)'
(cd "$root" && cargo build --release --quiet --bin vggfeat --example synthetic_store)
tdir="${CARGO_TARGET_DIR:-$root/target}/release"
v="$tdir/vggfeat"

store="$work/store-$n-$d"
if [ ! -d "$store" ]; then
    echo "== synthetic store: $n records x $d floats"
    "$tdir/examples/synthetic_store" "$store" "$n" "$d"
fi
if [ ! -f "$store.npy" ]; then
    "$v" export "$store" --npy "$store.npy"
fi
# Every (n / nq)-th id of the store, in id order.
"$py" - "$store.ids.csv" "$nq" > "$work/queries.txt" <<'PY'
import csv, sys
with open(sys.argv[1], newline="") as f:
    r = csv.reader(f); next(r); ids = [row[0] for row in r]
step = max(1, len(ids) // int(sys.argv[2]))
print("\n".join(ids[::step][: int(sys.argv[2])]))
PY
echo "== $(wc -l < "$work/queries.txt") queries, k = $k, $(nproc) cores"

timed() { # label, command...: prints wall seconds and peak RSS; keeps stdout in $work/<label>.out
    local label=$1; shift
    /usr/bin/time -v "$@" 2> "$work/$label.time" > "$work/$label.out" || { cat "$work/$label.time"; exit 1; }
    local kb wall
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$label.time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$label.time" \
        | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    echo "$wall $kb"
}
best_v=""; best_np=""
for r in $(seq "$rounds"); do
    read -r wv kv < <(timed vggfeat "$v" neighbours --quiet -f "$store" --ids-file "$work/queries.txt" \
        -k "$k" --include-self -o "$work/nn")
    read -r wn kn < <(timed numpy "$py" "$here/bench_neighbours.py" search "$store.npy" \
        "$store.ids.csv" "$work/queries.txt" "$k" "$work/numpy_top.npy")
    printf 'round %d: vggfeat %.2f s (peak RSS %.0f MiB), numpy %.2f s (peak RSS %.0f MiB) %s\n' \
        "$r" "$wv" "$(echo "$kv / 1024" | bc -l)" "$wn" "$(echo "$kn / 1024" | bc -l)" "$(cat "$work/numpy.out")"
    if [ -z "$best_v" ] || (( $(echo "$wv < $best_v" | bc -l) )); then best_v=$wv; best_kv=$kv; fi
    if [ -z "$best_np" ] || (( $(echo "$wn < $best_np" | bc -l) )); then best_np=$wn; best_kn=$kn; fi
done
echo "== best of $rounds"
printf 'vggfeat neighbours : %6.2f s   peak RSS %7.1f MiB\n' "$best_v" "$(echo "$best_kv / 1024" | bc -l)"
printf 'numpy Q @ X.T      : %6.2f s   peak RSS %7.1f MiB\n' "$best_np" "$(echo "$best_kn / 1024" | bc -l)"
printf 'numpy / vggfeat    : %6.2fx (time)   %6.2fx (peak RSS)\n' \
    "$(echo "$best_np / $best_v" | bc -l)" "$(echo "$best_kn / $best_kv" | bc -l)"
"$py" "$here/bench_neighbours.py" recall "$store.ids.csv" "$work/numpy_top.npy" \
    "$work/nn/neighbours.csv" "$k"
