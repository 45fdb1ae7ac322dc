#!/usr/bin/env python3
"""Reference solutions for `svm::tests::dcd_matches_sklearn_liblinear`: scikit-learn's LinearSVC
(liblinear) on a small problem defined by a formula (so the Rust test rebuilds it exactly), solved
to a tight tolerance. Run with the venv of scripts/bench_svm.sh; paste the output into the test.

  x[i, j] = sin(0.7 i + 1.3 j + 0.1 i j),  i < 40, j < 5
  y[i]    = (sum_j (j - 2) x[i, j] + 0.2 > 0) xor (i % 7 == 0)
"""
import math

import numpy as np
import sklearn
from sklearn.svm import LinearSVC

n, d = 40, 5
x = np.array([[math.sin(0.7 * i + 1.3 * j + 0.1 * i * j) for j in range(d)] for i in range(n)])
y = np.array([int((sum((j - 2) * x[i, j] for j in range(d)) + 0.2 > 0) != (i % 7 == 0))
              for i in range(n)])
print(f"// scikit-learn {sklearn.__version__}, {y.sum()} positives of {n}")
for loss in ("hinge", "squared_hinge"):
    for c in (0.5, 4.0):
        m = LinearSVC(C=c, loss=loss, dual=True, tol=1e-9, max_iter=1_000_000,
                      intercept_scaling=1.0).fit(x, y)
        w = ", ".join(f"{v:.10}" for v in m.coef_[0])
        print(f"({loss!r}, {c}, [{w}], {m.intercept_[0]:.10}),")
