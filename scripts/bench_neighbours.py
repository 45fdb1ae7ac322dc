"""numpy's route to exact cosine k-NN, the one `vggfeat neighbours` is measured against
(scripts/bench_neighbours.sh): load the exported float32 matrix, Q @ X.T, argpartition for the
top k, then sort those k. Prints one JSON line: timings (load, search) and the agreement of
vggfeat's result (its CSV) with numpy's, as recall@k.

    python bench_neighbours.py search X.npy IDS.csv QUERIES.txt K OUT.npy
    python bench_neighbours.py recall X.ids.csv OUT.npy NEIGHBOURS.csv K
"""

import csv
import json
import sys
import time

import numpy as np


def search(x_path, ids_path, queries_path, k, out_path):
    t0 = time.perf_counter()
    x = np.load(x_path)
    with open(ids_path, newline="") as f:
        r = csv.reader(f)
        next(r)
        row_of = {row[0]: i for i, row in enumerate(r)}
    with open(queries_path) as f:
        rows = np.array([row_of[line.strip()] for line in f if line.strip()])
    t1 = time.perf_counter()
    q = x[rows]
    s = q @ x.T
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    t2 = time.perf_counter()
    np.save(out_path, top)
    print(json.dumps({"load_s": t1 - t0, "search_s": t2 - t1, "total_s": t2 - t0,
                      "rows": int(x.shape[0]), "dim": int(x.shape[1]),
                      "queries": int(len(rows)), "k": k}))


def recall(ids_path, top_path, nn_csv, k):
    with open(ids_path, newline="") as f:
        r = csv.reader(f)
        next(r)
        ids = [row[0] for row in r]
    top = np.load(top_path)
    ours = {}
    with open(nn_csv, newline="") as f:
        for row in csv.DictReader(f):
            ours.setdefault(row["query"], []).append(row["id"])
    queries = list(ours)
    hit = 0
    for qi, q in enumerate(queries):
        hit += len(set(ours[q][:k]) & {ids[j] for j in top[qi]})
    print(json.dumps({f"recall@{k}": hit / (k * len(queries)), "queries": len(queries)}))


if __name__ == "__main__":
    if sys.argv[1] == "search":
        search(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        recall(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
