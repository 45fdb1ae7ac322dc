#!/usr/bin/env bash
# Documented check that pandas and polars read vggfeat's Parquet exports as they are. It writes a
# synthetic store (2,000 records of dimension 64) and exports it as --parquet, --csv and
# --npy-shards. In a throwaway venv with pandas, pyarrow and polars, it then checks:
#   - np.stack(pd.read_parquet(f).features) equals the CSV export's values exactly (the CSV holds
#     shortest round-trip floats);
#   - polars reads the same ids and values;
#   - the emb_*.npy / meta_*.parquet shards concatenate to the same matrix.
# Run from the repository root: bash scripts/check_parquet_pandas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --bin vggfeat --example synthetic_store
target/release/examples/synthetic_store "$work/store" 2000 64
v=target/release/vggfeat
$v export "$work/store" --parquet "$work/d.parquet"
$v export "$work/store" --csv "$work/d.csv"
$v export "$work/store" --npy-shards "$work/shards" --rows 700
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet pandas pyarrow polars
"$work/venv/bin/python" - "$work" <<'PY'
import glob, sys
import numpy as np, pandas as pd, polars as pl
w = sys.argv[1]
df = pd.read_parquet(f"{w}/d.parquet")
x = np.stack(df.features)
csv = pd.read_csv(f"{w}/d.csv", dtype={"id": str, "label": str})
y = csv[[f"d{j}" for j in range(x.shape[1])]].to_numpy(np.float32)
assert list(df.id) == list(csv.id), "ids differ"
assert list(df.label) == list(csv.label), "labels differ"
assert x.dtype == np.float32 and x.shape == (2000, 64), (x.dtype, x.shape)
assert np.array_equal(x, y), "pandas: Parquet features differ from the CSV export"
p = pl.read_parquet(f"{w}/d.parquet")
assert p["id"].to_list() == list(df.id)
assert np.array_equal(np.stack(p["features"].to_numpy()), x), "polars: features differ"
embs = sorted(glob.glob(f"{w}/shards/emb_*.npy"))
metas = sorted(glob.glob(f"{w}/shards/meta_*.parquet"))
assert len(embs) == len(metas) == 3, (embs, metas)
s = np.concatenate([np.load(e) for e in embs])
ids = sum((list(pd.read_parquet(m).id) for m in metas), [])
assert np.array_equal(s, x) and ids == list(df.id), "npy shards differ"
print(f"pandas {pd.__version__}, pyarrow, polars {pl.__version__}: {x.shape[0]} rows x {x.shape[1]} "
      "read from Parquet equal the CSV export exactly; 3 npy shards concatenate to the same matrix")
PY
