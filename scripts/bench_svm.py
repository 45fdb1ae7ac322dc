#!/usr/bin/env python3
"""scikit-learn side of the SVM benchmark (see scripts/bench_svm.sh and examples/svm_bench.rs).

  bench_svm.py generate OUT.csv [--classes 102 --per-class 80 --dim 4096 --seed 0]
      Writes a synthetic feature CSV (header id,label,d0,...): non-negative, L2-normalised
      descriptors with a class structure like CNN features (see `generate`).

  bench_svm.py run --features F.csv --split S.csv [--grid ...] [--eps 0.1] [--loss squared_hinge]
      Same protocol as examples/svm_bench.rs with sklearn's LinearSVC (liblinear's dual
      coordinate descent, one-vs-rest): S.csv has id,set with set in train / val / test, where
      train + val is the training split and val the 20 % hold-out (the Rust example writes it with
      --write-split, so both sides use identical partitions). For each C: fit on train, mean
      class recall on val; the best C (smallest on ties) is refitted on train + val and scored on
      test. Prints one JSON line.

  bench_svm.py binary --features F.csv --split S.csv [--eps 0.1]
      Times one binary problem (class 0 vs rest on train + val, C = 1).
"""

import argparse
import json
import sys
import time

import numpy as np


def generate(args):
    """Class prototypes in a 64-d latent space, grouped in super-classes (so some classes are
    confusable); each item = prototype + within-class noise, mapped to `dim` dims by a fixed random
    matrix, through a ReLU, averaged over 4 noisy "views" (as dense multi-crop evaluation averages
    positions), then L2-normalised."""
    rng = np.random.default_rng(args.seed)
    k, r, d = args.classes, 64, args.dim
    n_super = max(1, k // 6)
    supers = rng.normal(size=(n_super, r)) * 1.0
    protos = supers[np.arange(k) % n_super] + rng.normal(size=(k, r)) * 0.9
    a = rng.normal(size=(r, d)) / np.sqrt(r)
    rows = []
    labels = []
    for c in range(k):
        z = protos[c] + rng.normal(size=(args.per_class, r)) * args.within
        x = np.zeros((args.per_class, d), dtype=np.float32)
        for _ in range(4):
            v = (z + rng.normal(size=z.shape) * 0.5) @ a + rng.normal(size=(args.per_class, d)) * 0.3
            x += np.maximum(v - 0.5, 0.0).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
        rows.append(x)
        labels += [f"class{c:03d}"] * args.per_class
    x = np.concatenate(rows)
    ids = [f"item{i:06d}" for i in range(len(labels))]
    with open(args.out, "w") as f:
        f.write("id,label," + ",".join(f"d{j}" for j in range(d)) + "\n")
        for i in range(len(ids)):
            vals = ",".join("0" if v == 0 else f"{v:.6g}" for v in x[i])
            f.write(f"{ids[i]},{labels[i]},{vals}\n")
    zeros = float((x == 0).mean())
    print(f"wrote {args.out}: {len(ids)} items x {d} dims, {k} classes, {zeros:.0%} zeros",
          file=sys.stderr)


def load(args):
    import pandas as pd

    feats = pd.read_csv(args.features)
    split = pd.read_csv(args.split)
    sets = dict(zip(split["id"].astype(str), split["set"]))
    ids = feats["id"].astype(str).to_numpy()
    classes = sorted(feats["label"].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    y = feats["label"].astype(str).map(index).to_numpy()
    x = feats.drop(columns=["id", "label"]).to_numpy(dtype=np.float64)
    part = np.array([sets.get(i, "") for i in ids])
    return x, y, part, len(classes)


def mean_class_recall(truth, pred, k):
    recalls = [np.mean(pred[truth == c] == c) for c in range(k) if np.any(truth == c)]
    return float(np.mean(recalls))


def svc(c, args):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=c, loss=args.loss, dual=True, tol=args.eps, max_iter=1000,
                     intercept_scaling=1.0, random_state=args.seed)


def run(args):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    x, y, part, k = load(args)
    tr, va, te = part == "train", part == "val", part == "test"
    full = tr | va
    grid = [float(c) for c in args.grid.split(",")]
    t0 = time.perf_counter()
    scores = []
    for c in grid:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always", ConvergenceWarning)
            m = svc(c, args).fit(x[tr], y[tr])
        converged = not any(issubclass(i.category, ConvergenceWarning) for i in w)
        scores.append({"c": c, "score": mean_class_recall(y[va], m.predict(x[va]), k),
                       "converged": converged})
    best = max(scores, key=lambda s: s["score"])["score"]
    chosen = min(s["c"] for s in scores if s["score"] == best)
    model = svc(chosen, args).fit(x[full], y[full])
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    pred = model.predict(x[te])
    test_s = time.perf_counter() - t1
    print(json.dumps({
        "impl": "sklearn", "n_train": int(full.sum()), "n_test": int(te.sum()), "d": x.shape[1],
        "classes": k, "threads": 1, "chosen_c": chosen, "validation": scores,
        "train_s": train_s, "test_s": test_s, "total_s": train_s + test_s,
        "mean_class_recall": mean_class_recall(y[te], pred, k),
        "accuracy": float(np.mean(pred == y[te])),
    }))


def binary(args):
    x, y, part, _ = load(args)
    full = (part == "train") | (part == "val")
    xb, yb = x[full], (y[full] == 0).astype(int)
    t0 = time.perf_counter()
    m = svc(1.0, args).fit(xb, yb)
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": "sklearn", "mode": "binary", "n": int(full.sum()), "d": x.shape[1],
                      "fit_s": secs, "iterations": int(np.max(m.n_iter_))}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("--classes", type=int, default=102)
    g.add_argument("--per-class", type=int, default=80)
    g.add_argument("--dim", type=int, default=4096)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--within", type=float, default=2.0,
                   help="within-class standard deviation in the latent space (difficulty)")
    for name in ("run", "binary"):
        r = sub.add_parser(name)
        r.add_argument("--features", required=True)
        r.add_argument("--split", required=True)
        r.add_argument("--grid", default="0.01,0.1,1,10,100,1000")
        r.add_argument("--eps", type=float, default=0.1)
        r.add_argument("--loss", default="squared_hinge", choices=["squared_hinge", "hinge"])
        r.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    {"generate": generate, "run": run, "binary": binary}[args.cmd](args)


if __name__ == "__main__":
    main()
