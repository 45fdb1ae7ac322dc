"""A Ray Data pipeline of vggfeat on a local Ray (docs/ray.md): image paths through
`map_batches` with an actor pool, each actor holding one `vggfeat.Extractor`; its rows must
equal the command line's `extract` + `export` of the same images (1e-6 relative).

    python scripts/ray_check.py VGGFEAT_BIN WEIGHTS IMAGE_DIR WORK_DIR
"""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import ray

import vggfeat


class Describe:
    """One extractor per actor: the weights load once, then every batch is described."""

    def __init__(self, weights: str):
        self.ext = vggfeat.Extractor(weights, scales=(224, 256), threads=1)

    def __call__(self, batch: dict) -> dict:
        paths = list(batch["path"])
        return {"path": np.array(paths), "features": self.ext.describe(paths)}


def cli_rows(vggfeat_bin: str, weights: str, images: Path, work: Path) -> dict:
    store, out = work / "store", work / "x.csv"
    for args in (
        ["extract", str(images), "-w", weights, "--scales", "224,256", "-o", str(store), "-q"],
        ["export", str(store), "--aggregate", "stack", "--csv", str(out)],
    ):
        subprocess.run([vggfeat_bin, *args], check=True)
    with open(out, newline="") as f:
        r = csv.reader(f)
        next(r)
        return {row[0]: np.array(row[2:], dtype=np.float32) for row in r}


def main() -> int:
    vggfeat_bin, weights, images, work = sys.argv[1:5]
    images, work = Path(images), Path(work)
    want = cli_rows(vggfeat_bin, weights, images, work)
    paths = sorted(str(p) for p in images.rglob("*") if p.is_file())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"path": p} for p in paths])
        out = ds.map_batches(
            Describe,
            fn_constructor_args=(weights,),
            batch_size=2,
            compute=ray.data.ActorPoolStrategy(size=2),
        )
        rows = out.take_all()
    finally:
        ray.shutdown()
    assert len(rows) == len(want), (len(rows), len(want))
    worst = 0.0
    for r in rows:
        key = str(Path(r["path"]).relative_to(images))
        a, b = np.asarray(r["features"], np.float64), want[key].astype(np.float64)
        worst = max(worst, float(np.linalg.norm(a - b) / np.linalg.norm(b)))
    print(f"ray: {len(rows)} rows from 2 actors, largest relative difference to the CLI {worst:.2e}")
    assert worst <= 1e-6
    print("ray check: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
