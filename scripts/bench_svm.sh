#!/usr/bin/env bash
# SVM benchmark: vggfeat's DCD solver (examples/svm_bench.rs) against scikit-learn's LinearSVC
# (liblinear) on the same features, the same partition and the same C grid. Not run in CI.
#
#   scripts/bench_svm.sh [FEATURES.csv [SPLIT.csv]]
#
# Without FEATURES.csv, a synthetic set is generated (102 classes x 80 items, d = 4096,
# non-negative and L2-normalised; see scripts/bench_svm.py generate) and split 30 train / 50 test
# per class. Environment: WORK (scratch folder, default ${TMPDIR:-/tmp}/vggfeat-svm-bench), EPS
# (solver tolerance, default 0.1), GRID (default 0.01,0.1,1,10,100,1000), SEED (default 0),
# CARGO_TARGET_DIR (as usual), SVM_BENCH_BIN (an already built svm_bench, to skip the build). A
# throwaway venv with scikit-learn, numpy and pandas is made in WORK.
# Our side runs with 1 thread (the comparison with single-threaded liblinear) and with all cores.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
work="${WORK:-${TMPDIR:-/tmp}/vggfeat-svm-bench}"
eps="${EPS:-0.1}"
grid="${GRID:-0.01,0.1,1,10,100,1000}"
seed="${SEED:-0}"
mkdir -p "$work"

if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet scikit-learn numpy pandas
fi
py="$work/venv/bin/python"
"$py" -c 'import sklearn, numpy; print("scikit-learn", sklearn.__version__, "numpy", numpy.__version__)'

features="${1:-}"
if [ -z "$features" ]; then
    features="$work/synthetic.csv"
    if [ ! -f "$features" ]; then
        "$py" "$here/bench_svm.py" generate "$features" --seed "$seed"
    fi
fi
split_args=()
if [ -n "${2:-}" ]; then
    split_args=(--split "$2")
fi

bin="${SVM_BENCH_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --release --example svm_bench)
    bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/svm_bench"
fi
common=(--features "$features" --seed "$seed" --eps "$eps" --grid "$grid")

echo "== vggfeat, 1 thread"
RAYON_NUM_THREADS=1 "$bin" "${common[@]}" "${split_args[@]}" \
    --write-split "$work/partition.csv" --json "$work/ours_1.json" | tail -1
echo "== vggfeat, all cores"
"$bin" "${common[@]}" "${split_args[@]}" --json "$work/ours_n.json" | tail -1
echo "== scikit-learn LinearSVC (liblinear, 1 thread)"
"$py" "$here/bench_svm.py" run --features "$features" --split "$work/partition.csv" \
    --eps "$eps" --grid "$grid" --seed "$seed" > "$work/sklearn.json"
cat "$work/sklearn.json"

echo "== one binary problem (class 0 vs rest, C = 1)"
RAYON_NUM_THREADS=1 "$bin" "${common[@]}" "${split_args[@]}" --binary-only | tail -1
"$py" "$here/bench_svm.py" binary --features "$features" --split "$work/partition.csv" \
    --eps "$eps" --seed "$seed"

"$py" - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
o1, on, sk = (json.load(open(f"{w}/{n}.json")) for n in ("ours_1", "ours_n", "sklearn"))
print()
print(f"problem: {sk['classes']} classes, {sk['n_train']} train / {sk['n_test']} test, d = {sk['d']}")
print(f"{'':24}{'train+select s':>15}{'test s':>9}{'chosen C':>10}{'mean recall':>13}")
for name, r in (("vggfeat (1 thread)", o1), (f"vggfeat ({on['threads']} threads)", on),
                ("sklearn LinearSVC", sk)):
    print(f"{name:24}{r['train_s']:>15.2f}{r['test_s']:>9.3f}{r['chosen_c']:>10g}"
          f"{100 * r['mean_class_recall']:>12.2f}%")
print(f"speed-up vs sklearn: {sk['total_s'] / o1['total_s']:.2f}x (1 thread), "
      f"{sk['total_s'] / on['total_s']:.2f}x ({on['threads']} threads)")
print(f"recall difference (ours 1 thread - sklearn): "
      f"{100 * (o1['mean_class_recall'] - sk['mean_class_recall']):+.2f} points")
EOF
