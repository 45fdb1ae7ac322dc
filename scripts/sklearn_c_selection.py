#!/usr/bin/env python3
"""vggfeat's C selection against a scikit-learn user's, on identical splits and features.

For each split file a `vggfeat svm` run wrote (`split<N>.csv`: id,label,set), this fits what a
scikit-learn user would write,

    GridSearchCV(LinearSVC(), {"C": grid}, cv=5).fit(X_train, y_train)

(5-fold StratifiedKFold without shuffling, accuracy scoring: the defaults) and, as a second
column, the same search scored by balanced accuracy (= mean class recall, what vggfeat scores);
then the mean class recall of each on the split's test images. vggfeat's own figures are read
from the run's metrics.json. The features are the run's store exported with the run's
aggregation (`vggfeat export STORE --aggregate <how> --parquet F`).

  python scripts/sklearn_c_selection.py --features F.parquet --results DIR [--results DIR2 ...]
        [--grid 0.01,0.1,1,10,100,1000] [--markdown OUT.md]

Each --results folder is one vggfeat run (for instance one with the default k-fold selection and
one with `--c-validation holdout`); they must share the split files.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.svm import LinearSVC


def load_features(path):
    df = pd.read_parquet(path)
    x = np.stack(df["features"].to_numpy()).astype(np.float64)
    return dict(zip(df["id"], range(len(df)))), x


def split_files(results):
    files = sorted(results.glob("split*.csv"), key=lambda p: int(p.stem[5:]))
    if not files:
        sys.exit(f"{results}: no split<N>.csv files (not a Caltech-style vggfeat results folder)")
    return files


def vggfeat_figures(results):
    m = json.loads((results / "metrics.json").read_text())
    params = m["parameters"]
    out = []
    for s in params["splits"]:
        out.append((s["c"], s["mean_class_recall"], s.get("folds")))
    how = params["select"].get("validation", "holdout")
    return how, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, type=Path)
    ap.add_argument("--results", required=True, type=Path, action="append")
    ap.add_argument("--grid", default="0.01,0.1,1,10,100,1000")
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    grid = [float(c) for c in a.grid.split(",")]
    row_of, x = load_features(a.features)
    files = split_files(a.results[0])
    for r in a.results[1:]:
        other = split_files(r)
        if [f.read_bytes() for f in other] != [f.read_bytes() for f in files]:
            sys.exit(f"{r}: its split files differ from {a.results[0]}'s")
    runs = [(r, *vggfeat_figures(r)) for r in a.results]

    rows = []
    for s, f in enumerate(files):
        split = pd.read_csv(f, dtype=str, keep_default_na=False)
        missing = [i for i in split["id"] if i not in row_of]
        if missing:
            sys.exit(f"{f}: {len(missing)} ids not in {a.features} (first: {missing[0]})")
        idx = split["id"].map(row_of).to_numpy()
        train = (split["set"] == "train").to_numpy()
        test = (split["set"] == "test").to_numpy()
        y = split["label"].to_numpy()
        row = {"split": s}
        for name, scoring in (("sklearn", None), ("sklearn_balanced", "balanced_accuracy")):
            gs = GridSearchCV(LinearSVC(), {"C": grid}, cv=5, scoring=scoring)
            gs.fit(x[idx[train]], y[train])
            pred = gs.predict(x[idx[test]])
            row[name] = (gs.best_params_["C"], balanced_accuracy_score(y[test], pred))
        for r, how, figures in runs:
            row[str(r)] = figures[s][:2]
        rows.append(row)

    lines = [
        f"scikit-learn {sklearn.__version__}, grid {grid}, features {a.features.name} "
        f"({x.shape[0]} x {x.shape[1]})",
        "",
        "mean class recall on each split's test images, % (chosen C)",
        "",
    ]
    heads = [f"vggfeat {how}" for _, how, _ in runs] + [
        "GridSearchCV(LinearSVC(), cv=5)",
        "same, scoring=balanced_accuracy",
    ]
    lines.append("| split | " + " | ".join(heads) + " |")
    lines.append("| --- |" + " --: |" * len(heads))
    means = [[] for _ in heads]
    for row in rows:
        cells = [row[str(r)] for r, _, _ in runs] + [row["sklearn"], row["sklearn_balanced"]]
        for m, (_, v) in zip(means, cells):
            m.append(100 * v)
        lines.append(
            f"| {row['split']} | "
            + " | ".join(f"{100 * v:.2f} (C = {c:g})" for c, v in cells)
            + " |"
        )
    lines.append(
        "| **mean ± std** | "
        + " | ".join(f"**{np.mean(m):.2f} ± {np.std(m, ddof=1) if len(m) > 1 else 0:.2f}**" for m in means)
        + " |"
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        a.markdown.parent.mkdir(parents=True, exist_ok=True)
        a.markdown.write_text(text)


if __name__ == "__main__":
    main()
