#!/usr/bin/env bash
# Makes a folder of symbolic links to exactly the images named in split files (id,label,set CSV,
# as `vggfeat svm` and `examples/dataset_split` write them), keeping the ids (class/file), so that
# `vggfeat extract` computes only the images a protocol uses. On a 2-core machine this saves a
# quarter of Caltech-101's extraction time (7,099 of 9,145 images are in the 3 standard splits).
#
#   scripts/split_subset.sh DATASET_ROOT OUT_DIR split0.csv [split1.csv ...]
set -euo pipefail
root=$(cd "$1" && pwd)
out=$2
shift 2
mkdir -p "$out"
tail -q -n +2 "$@" | cut -d, -f1 | sort -u | while IFS= read -r id; do
  mkdir -p "$out/$(dirname "$id")"
  ln -sfn "$root/$id" "$out/$id"
done
echo "$(find "$out" -type l | wc -l) images linked under $out"
