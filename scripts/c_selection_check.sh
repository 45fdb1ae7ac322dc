#!/usr/bin/env bash
# vggfeat's C selection (default: stratified 5-fold cross-validation; and the paper's hold-out)
# against scikit-learn's GridSearchCV(LinearSVC(), cv=5) on identical splits and features, for
# one store: `vggfeat svm` twice (kfold, holdout) on the same split files, the store exported
# with the same aggregation, then scripts/sklearn_c_selection.py on the split files.
#
#   bash scripts/c_selection_check.sh STORE NAME [svm flags...]
#
# writes results/c-selection/NAME.md (and the vggfeat results under target/c-selection/NAME/).
# Examples (from the repository root):
#   # the README's quick-start job (its store: target/demo/store)
#   bash scripts/c_selection_check.sh target/demo/store quickstart --train-per-class 8 --test-per-class 8
#   # the committed Caltech-101 results (results/caltech101-hed-pool4): their split files
#   bash scripts/c_selection_check.sh target/caltech101-pool4 caltech101-hed-pool4-stack \
#     --split-files results/caltech101-hed-pool4/stack/split0.csv,results/caltech101-hed-pool4/stack/split1.csv,results/caltech101-hed-pool4/stack/split2.csv
# VGGFEAT (default target/release/vggfeat) and PY (default: a venv in target/sk-venv with
# scikit-learn, pandas and pyarrow from PyPI) may be given.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=$1
NAME=$2
shift 2
VGGFEAT=${VGGFEAT:-target/release/vggfeat}
AGG=${AGG:-stack}
if [ -z "${PY:-}" ]; then
  [ -x target/sk-venv/bin/python ] || python3 -m venv target/sk-venv
  target/sk-venv/bin/pip install -q scikit-learn pandas pyarrow
  PY=target/sk-venv/bin/python
fi
WORK=target/c-selection/$NAME
mkdir -p "$WORK" results/c-selection
"$VGGFEAT" svm -f "$STORE" --aggregate "$AGG" "$@" -o "$WORK/kfold"
# The hold-out run uses the k-fold run's split files, so that every column sees the same splits.
SPLITS=$(ls "$WORK"/kfold/split*.csv | sort -V | paste -sd, -)
ARGS=()
skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  case $a in --split-files) skip=1 ;; --split-files=*) ;; *) ARGS+=("$a") ;; esac
done
"$VGGFEAT" svm -f "$STORE" --aggregate "$AGG" "${ARGS[@]}" --split-files "$SPLITS" \
  --c-validation holdout -o "$WORK/holdout"
"$VGGFEAT" export "$STORE" --aggregate "$AGG" --parquet "$WORK/features.parquet"
{
  echo "# C selection on \`$NAME\`: vggfeat against scikit-learn, same splits and features"
  echo
  echo "Store \`$STORE\`, aggregation \`$AGG\`, \`vggfeat svm $*\`; produced by"
  echo "\`bash scripts/c_selection_check.sh $STORE $NAME $*\`."
  echo
  "$PY" scripts/sklearn_c_selection.py --features "$WORK/features.parquet" \
    --results "$WORK/kfold" --results "$WORK/holdout"
} | tee "results/c-selection/$NAME.md"
