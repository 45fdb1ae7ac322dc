"""The scikit-learn estimators: get/set_params, clone and pickle round trips, a Pipeline with
GridSearchCV, and LinearSVC's decision values equal to the classifiers `vggfeat svm` saves on
the same rows and C."""

import csv
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import vggfeat
from conftest import read_export, run
from vggfeat.sklearn import LinearSVC, VGGFeatures

CLASSES = "Faces,Leopards,Motorbikes,airplanes"


@pytest.fixture(scope="module")
def caltech_run(tmp_path_factory, cli, tiny_weights, caltech):
    """A CLI run on 4 Caltech classes: store, export, and an svm run with one C."""
    d = tmp_path_factory.mktemp("svm")
    store = d / "store"
    run(cli, "extract", caltech, "--classes", CLASSES, "--limit-per-class", "10",
        "--scales", "224", "-w", tiny_weights, "-o", store, "-q")
    run(cli, "export", store, "--aggregate", "stack", "--csv", d / "x.csv")
    run(cli, "svm", "-f", store, "--train-per-class", "6", "--test-per-class", "4",
        "--splits", "1", "--c-grid", "10", "-o", d / "results")
    return d, read_export(d / "x.csv")


def test_linear_svc_decision_values_equal_the_command_lines(caltech_run):
    d, (ids, labels, x) = caltech_run
    row = {i: k for k, i in enumerate(ids)}
    with open(d / "results/split0.csv", newline="") as f:
        split = list(csv.DictReader(f))
    train = [r for r in split if r["set"] == "train"]
    test = [r for r in split if r["set"] == "test"]
    xtr = x[[row[r["id"]] for r in train]]
    ytr = [r["label"] for r in train]
    svc = LinearSVC(C=10).fit(xtr, ytr)
    with open(d / "results/scores_split0.csv", newline="") as f:
        scores = list(csv.reader(f))
    header, body = scores[0], scores[1:]
    assert header[2:] == list(svc.classes_)
    want = np.array([[float(v) for v in r[2:]] for r in body], dtype=np.float32)
    got = svc.decision_function(x[[row[r[0]] for r in body]])
    assert got.shape == want.shape == (len(test), 4)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert (svc.predict(xtr) == np.array(ytr)).mean() > 0.5


def test_estimators_follow_scikit_learns_conventions(caltech_run, tiny_weights, caltech):
    _, (ids, labels, x) = caltech_run
    svc = LinearSVC(C=0.5, loss="hinge")
    assert clone(svc).get_params() == svc.get_params()
    svc.set_params(C=2.0)
    assert svc.C == 2.0
    fitted = svc.fit(x, labels)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.decision_function(x), fitted.decision_function(x))
    binary = LinearSVC().fit(x[:20], labels[:20])
    assert binary.decision_function(x[:20]).shape == (20,)
    with pytest.raises(ValueError, match="loss"):
        LinearSVC(loss="log").fit(x, labels)

    feats = VGGFeatures(weights=tiny_weights, scales=(224,))
    c = clone(feats)
    assert c.get_params() == feats.get_params()
    paths = [str(caltech / i) for i in ids]
    xt = feats.fit_transform(paths[:4])
    np.testing.assert_allclose(xt, x[:4], rtol=1e-6, atol=1e-7)
    f2 = pickle.loads(pickle.dumps(feats))
    np.testing.assert_allclose(f2.transform(paths[:2]), x[:2], rtol=1e-6, atol=1e-7)


def test_pipeline_and_grid_search(caltech_run, tiny_weights, caltech):
    _, (ids, labels, _) = caltech_run
    paths = [str(caltech / i) for i in ids]
    pipe = make_pipeline(VGGFeatures(weights=tiny_weights, scales=(224,)), LinearSVC())
    search = GridSearchCV(pipe, {"linearsvc__C": [0.1, 10.0]}, cv=2)
    search.fit(paths, labels)
    assert search.best_params_["linearsvc__C"] in (0.1, 10.0)
    assert len(search.predict(paths[:3])) == 3
