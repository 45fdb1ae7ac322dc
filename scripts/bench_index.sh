#!/usr/bin/env bash
# The approximate index against the exact search, same run: `vggfeat index` (build time, size,
# the recall it states) and `vggfeat neighbours --index` against `vggfeat neighbours` (exact,
# the streamed blocked GEMM) on the same queries, with the recall@k of the index's answer
# against the exact one. Not run in CI.
#
#   bash scripts/bench_index.sh [N] [D] [QUERIES] [K]
#
# Defaults: 100,000 x 4,096 synthetic stores (examples/synthetic_store.rs), 1,000 queries (every
# N/QUERIES-th id), k = 10, both searches with --include-self. Two stores: uniform values
# (CLUSTERS=0, every pair of rows near cosine 0.75: no structure, the hardest case for a graph)
# and 1,000 clusters (rows near one of 1,000 centres, as descriptors of photos are). STORE=DIR
# adds a real store. Each command is one process under /usr/bin/time -v: wall time, peak RSS
# (for a search with the index, the pages of the memory-mapped index it touched count too).
# Both searches write their CSV to stdout (no HTML page, whose thumbnails would dominate on real
# images). The index is searched at each expansion of EXPANSIONS. Environment: WORK (scratch,
# default ${TMPDIR:-/tmp}/vggfeat-index-bench), CLUSTERS (default "0 1000"), QUANT (default
# "bf16"), EXPANSIONS (default "64 256"), INDEX_ARGS (more `vggfeat index` flags), STORE, REUSE=1
# (keep an index already built in WORK: its build time and size then come from its index.json,
# its peak memory is not measured).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
n=${1:-100000}
d=${2:-4096}
nq=${3:-1000}
k=${4:-10}
work="${WORK:-${TMPDIR:-/tmp}/vggfeat-index-bench}"
mkdir -p "$work"
(cd "$root" && cargo build --release --quiet --bin vggfeat --example synthetic_store)
tdir="${CARGO_TARGET_DIR:-$root/target}/release"
v="$tdir/vggfeat"

timed() { # label, command...: prints "wall_s peak_MiB"; stdout and stderr kept in $work/<label>.*
    local label=$1; shift
    /usr/bin/time -v "$@" 2> "$work/$label.time" > "$work/$label.out" || { cat "$work/$label.time"; exit 1; }
    awk -F': ' '/Maximum resident set size/ {kb = $2} /Elapsed \(wall clock\)/ {w = $2}
        END { n = split(w, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i];
              printf "%.2f %.0f\n", s, kb / 1024 }' "$work/$label.time"
}

# recall@k of neighbours CSV $2 against the exact CSV $1 (a row within 1e-6 of the exact k-th
# similarity counts as found: ties at the cut are broken by row there, arbitrarily by a graph).
recall() {
    python3 - "$1" "$2" "$k" <<'PY'
import csv, sys
from collections import defaultdict
def read(p):
    out = defaultdict(list)
    with open(p, newline="") as f:
        for r in csv.DictReader(f):
            out[r["query"]].append((r["id"], float(r["similarity"])))
    return out
exact, approx, k = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
hits = total = 0
for q, e in exact.items():
    ids = {i for i, _ in e[:k]}
    kth = e[min(k, len(e)) - 1][1]
    hits += min(len(e[:k]), sum(1 for i, s in approx[q][:k] if i in ids or s >= kth - 1e-6))
    total += len(e[:k])
print(f"{hits / total:.4f}")
PY
}

stores=()
for c in ${CLUSTERS:-0 1000}; do
    s="$work/store-$n-$d-c$c"
    if [ ! -d "$s" ]; then
        echo "== synthetic store: $n x $d, clusters $c"
        "$tdir/examples/synthetic_store" "$s" "$n" "$d" "$c"
    fi
    stores+=("$s")
done
[ -n "${STORE:-}" ] && stores+=("$STORE")

echo "== $(nproc) cores, $nq queries, k = $k, quantization ${QUANT:-bf16}, expansions ${EXPANSIONS:-64 256}"
printf '| store | exact s | exact MiB | index build s | index MiB (file) | stated recall@%s | ef | search s | search MiB | recall@%s vs exact |\n' "$k" "$k"
printf '| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n'
for s in "${stores[@]}"; do
    name=$(basename "$s")
    if [ -n "${STORE:-}" ] && [ "$s" = "$STORE" ]; then
        # A real store: its ids from an export, every (rows / nq)-th in id order.
        "$v" export "$s" --csv "$work/real.csv" 2>/dev/null
        awk -F, 'NR > 1 {print $1}' "$work/real.csv" > "$work/all_ids.txt"
        rows=$(wc -l < "$work/all_ids.txt")
        step=$(( rows / nq > 0 ? rows / nq : 1 ))
        awk -v s="$step" -v m="$nq" '(NR - 1) % s == 0 && c < m {print; c++}' "$work/all_ids.txt" > "$work/queries.txt"
    else
        # synthetic_store's ids: record i is class{i % 100}/img{i}.jpg; every (n / nq)-th record.
        awk -v n="$n" -v m="$nq" 'BEGIN { s = int(n / m); if (s < 1) s = 1;
            for (i = 0; i < n && c < m; i += s) { printf "class%03d/img%07d.jpg\n", i % 100, i; c++ } }' \
            > "$work/queries.txt"
    fi
    read -r we me < <(timed "exact-$name" "$v" neighbours -q -f "$s" --ids-file "$work/queries.txt" \
        -k "$k" --include-self)
    for q in ${QUANT:-bf16}; do
        idx="$work/idx-$name-$q"
        if [ "${REUSE:-0}" = 1 ] && [ -f "$idx/index.json" ]; then
            wb=$(python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["build_seconds"])' "$idx/index.json")
            mb="-"
        else
            # shellcheck disable=SC2086
            read -r wb mb < <(timed "index-$name-$q" "$v" index -f "$s" -o "$idx" --quantization "$q" ${INDEX_ARGS:-})
        fi
        stated=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("%.4f" % m["recall"]["recall"], m["bytes"] >> 20)' "$idx/index.json")
        read -r st sz <<< "$stated"
        for ef in ${EXPANSIONS:-64 256}; do
            read -r ws ms < <(timed "search-$name-$q-$ef" "$v" neighbours -q -f "$s" --index "$idx" \
                --expansion "$ef" --ids-file "$work/queries.txt" -k "$k" --include-self)
            r=$(recall "$work/exact-$name.out" "$work/search-$name-$q-$ef.out")
            printf '| %s (%s) | %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s |\n' \
                "$name" "$q" "$we" "$me" "$wb" "$mb" "$sz" "$st" "$ef" "$ws" "$ms" "$r"
        done
    done
done
