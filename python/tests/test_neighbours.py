"""`Store.neighbours` (the library's exact cosine k-NN) against a brute-force numpy reference,
`np.argsort(-(Q @ X.T))`, on a real small store: the tiny fixture's images and some of
Caltech-101's through the tiny VGG-D, plus a byte copy of one image (an exact tie)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import vggfeat
from conftest import run


@pytest.fixture(scope="module")
def store(tmp_path_factory, cli, tiny_weights, tiny_images, caltech):
    d = tmp_path_factory.mktemp("nn")
    imgs = d / "imgs"
    (imgs / "a").mkdir(parents=True)
    (imgs / "b").mkdir()
    for p in tiny_images:
        shutil.copy(p, imgs / "a" / Path(p).name)
    shutil.copy(tiny_images[0], imgs / "a" / "0-copy.png")
    for cls in ("Faces", "Leopards", "airplanes", "Motorbikes"):
        for n in (1, 2):
            shutil.copy(caltech / cls / f"image_{n:04d}.jpg", imgs / "b" / f"{cls}-{n}.jpg")
    run(cli, "extract", imgs, "-w", tiny_weights, "--scales", "224,256", "-o", d / "store", "-q")
    return vggfeat.Store(d / "store"), imgs


def reference(x, q, k, skip=None):
    """Rows by similarity, highest first, ties by row (a stable sort), `skip` left out."""
    s = (q.astype(np.float64) @ x.astype(np.float64).T)
    order = np.argsort(-s, kind="stable")
    order = order[order != skip] if skip is not None else order
    return order[:k], s[order[:k]]


@pytest.mark.parametrize("aggregate", ["avg", "stack"])
def test_by_id_matches_numpy(store, aggregate):
    s, _ = store
    ids, x = s.to_numpy(aggregate=aggregate)
    assert len(ids) == 12
    got = s.neighbours(ids=ids, k=20, aggregate=aggregate, block=5)
    for r, g in enumerate(got):
        assert g["query"] == ids[r] and g["row"] == r
        rows, sims = reference(x, x[r], 20, skip=r)
        assert len(g["rows"]) == 11  # k past the store: every other row
        np.testing.assert_allclose(g["similarities"], sims, atol=1e-5)
        # The same rows wherever the reference's similarities are apart.
        apart = np.abs(sims[:, None] - sims[None, :]) < 1e-5
        unique = apart.sum(axis=1) == 1
        np.testing.assert_array_equal(g["rows"][unique], rows[unique])
        assert [ids[i] for i in g["rows"]] == g["ids"]
        assert np.all(np.diff(g["similarities"]) <= 0)


def test_exact_tie_and_include_self(store):
    s, _ = store
    ids, x = s.to_numpy(aggregate="avg")
    i0, ic = ids.index("a/0.png"), ids.index("a/0-copy.png")
    assert ic < i0
    g = s.neighbours(ids=["a/0.png"], k=2, exclude_self=False)[0]
    assert g["ids"] == ["a/0-copy.png", "a/0.png"]
    assert g["similarities"][0] == g["similarities"][1]
    g = s.neighbours(ids=["b/Faces-1.jpg"], k=12)[0]
    p0, pc = g["ids"].index("a/0.png"), g["ids"].index("a/0-copy.png")
    assert pc == p0 - 1 and g["similarities"][pc] == g["similarities"][p0]


def test_image_query_finds_itself(store):
    s, imgs = store
    # Both sides with their defaults: to_numpy and neighbours aggregate alike (stack).
    ids, x = s.to_numpy()
    g = s.neighbours(images=[imgs / "b" / "Leopards-2.jpg"], k=5)[0]
    assert g["row"] is None and g["ids"][0] == "b/Leopards-2.jpg"
    rows, sims = reference(x, x[ids.index("b/Leopards-2.jpg")], 5)
    np.testing.assert_allclose(g["similarities"], sims, atol=1e-5)


def test_refusals(store):
    s, _ = store
    with pytest.raises(ValueError, match="nope.png: no such id"):
        s.neighbours(ids=["nope.png"])
    with pytest.raises(ValueError, match="k: must be at least 1"):
        s.neighbours(ids=["a/0.png"], k=0)


def test_an_index_agrees_with_numpy(store, tmp_path):
    """`Store.build_index` then `neighbours(index=...)`: on 12 rows the graph proposes every
    other row (twice k candidates, re-scored exactly), so even with i8 vectors the answer is
    numpy's, with exact similarities; `index.json` states it."""
    s, _ = store
    meta = s.build_index(tmp_path / "idx", quantization="i8", recall_queries=50)
    assert meta["rows"] == 12 and meta["quantization"] == "i8"
    assert meta["recall"]["queries"] == 12 and meta["recall"]["recall"] == 1.0
    assert (tmp_path / "idx" / "index.usearch").stat().st_size == meta["bytes"]
    ids, x = s.to_numpy()
    got = s.neighbours(ids=ids, k=5, index=tmp_path / "idx", expansion=32)
    for r, g in enumerate(got):
        rows, sims = reference(x, x[r], 5, skip=r)
        # Scored exactly from the store, not from the i8 vectors.
        np.testing.assert_allclose(g["similarities"], sims, atol=1e-5)
        assert np.all(np.diff(g["similarities"]) <= 0)
    with pytest.raises(vggfeat.StoreError, match="aggregation stack"):
        s.neighbours(ids=ids[:1], index=tmp_path / "idx", aggregate="avg")
