"""scikit-learn estimators: :class:`VGGFeatures` (images -> the paper's descriptors, a
transformer) and :class:`LinearSVC` (vggfeat's liblinear-style linear SVMs, the classifiers
``vggfeat svm`` trains). Both follow scikit-learn's conventions (``get_params`` /
``set_params``, ``clone``, pickling, ``Pipeline``, ``GridSearchCV``)::

    from sklearn.pipeline import make_pipeline
    from sklearn.model_selection import GridSearchCV
    from vggfeat.sklearn import VGGFeatures, LinearSVC

    pipe = make_pipeline(VGGFeatures(weights="vgg16.safetensors"), LinearSVC())
    search = GridSearchCV(pipe, {"linearsvc__C": [0.1, 1, 10]}, cv=3).fit(paths, labels)

Describing images is the expensive step: to search over the SVM's parameters, transform the
images once and search over :class:`LinearSVC` alone.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import Extractor, _vggfeat

__all__ = ["VGGFeatures", "LinearSVC"]


class VGGFeatures(TransformerMixin, BaseEstimator):
    """Images (paths, bytes, (H, W, 3) uint8 arrays or PIL images) to the paper's descriptors:
    :meth:`vggfeat.Extractor.describe` as a stateless transformer. The keywords are the
    Extractor's; the weights are loaded on first use and again after unpickling."""

    def __init__(
        self,
        weights: Any = None,
        layer: Optional[str] = None,
        scales: Sequence[int] = (256, 384, 512),
        flip: bool = True,
        preprocess: str = "auto",
        precision: str = "f32",
        aggregate: str = "stack",
        threads: Optional[int] = None,
        batch: int = 2,
        progress: Any = False,
    ) -> None:
        self.weights = weights
        self.layer = layer
        self.scales = scales
        self.flip = flip
        self.preprocess = preprocess
        self.precision = precision
        self.aggregate = aggregate
        self.threads = threads
        self.batch = batch
        self.progress = progress

    def _extractor(self) -> Extractor:
        params = self.get_params()
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != params:
            if self.weights is None:
                raise ValueError("weights: a checkpoint path is required")
            cached = (params, Extractor(**params))
            self._cache = cached
        return cached[1]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state

    def fit(self, X: Any, y: Any = None) -> "VGGFeatures":
        """Loads the networks (nothing is learnt); returns self."""
        self.n_features_out_ = self._extractor().dim
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The (n, d) float32 descriptors of the images, rows in input order."""
        return self._extractor().describe(list(X))

    def _more_tags(self) -> dict:
        return {"stateless": True, "X_types": ["string"], "requires_fit": False}


class LinearSVC(ClassifierMixin, BaseEstimator):
    """L2-regularised linear SVMs fitted by liblinear's dual coordinate descent (vggfeat's own,
    the solver ``vggfeat svm`` uses): one-vs-rest for three classes or more, one model for two
    (as scikit-learn's ``LinearSVC``). With the same rows, labels and ``C``, ``decision_function``
    equals the decision values of the classifiers ``vggfeat svm`` saves.

    ``C`` (> 0); ``loss`` (``"squared_hinge"``, liblinear's default, or ``"hinge"``); ``tol``
    (the dual solver's stopping tolerance; default 0.1, liblinear's and the command line's,
    where scikit-learn's default is 1e-4); ``max_iter``; ``fit_intercept`` and
    ``intercept_scaling`` (the constant feature B whose weight is the bias, regularised like the
    others as in liblinear); ``random_state`` (seed of the coordinate order).
    """

    def __init__(
        self,
        C: float = 1.0,
        loss: str = "squared_hinge",
        tol: float = 0.1,
        max_iter: int = 1000,
        fit_intercept: bool = True,
        intercept_scaling: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.loss = loss
        self.tol = tol
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> "LinearSVC":
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-d array, got shape {X.shape}")
        y = np.asarray(y)
        if len(y) != X.shape[0]:
            raise ValueError(f"y: {len(y)} labels for {X.shape[0]} rows")
        check_classification_targets(y)
        self.classes_, idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y: needs at least 2 classes, got {len(self.classes_)}")
        B = float(self.intercept_scaling) if self.fit_intercept else 0.0
        w, b, converged = _vggfeat.fit_svms(
            X,
            [int(i) for i in idx],
            len(self.classes_),
            float(self.C),
            str(self.loss).replace("_", "-"),
            float(self.tol),
            int(self.max_iter),
            B,
            int(self.random_state),
        )
        self.coef_, self.intercept_ = w, b
        self.converged_ = converged
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: (n, classes), or (n,) for two classes (positive: ``classes_[1]``)."""
        check_is_fitted(self, "coef_")
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        f = _vggfeat.decision_function(self.coef_, self.intercept_, X)
        return f[:, 0] if len(self.classes_) == 2 else f

    def predict(self, X: Any) -> np.ndarray:
        f = self.decision_function(X)
        if f.ndim == 1:
            return self.classes_[(f > 0).astype(int)]
        return self.classes_[np.argmax(f, axis=1)]
