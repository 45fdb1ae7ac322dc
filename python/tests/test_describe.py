"""Descriptors in memory: by path, bytes and array alike, equal to `vggfeat extract` + `export`
(1e-6 relative), raw equal to `export --raw`; stores read as numpy and pandas; batches of a
listed dataset; pickling; the interpreter released while the engine works."""

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vggfeat
from conftest import read_export, rel, run

SCALES = (224, 256)


@pytest.fixture(scope="module")
def ext(tiny_weights):
    return vggfeat.Extractor(tiny_weights, scales=SCALES)


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory, cli, tiny_weights, tiny_images):
    """The CLI's store of the fixture images and its exports (stacked, and raw)."""
    d = tmp_path_factory.mktemp("cli")
    folder = Path(tiny_images[0]).parent
    store = d / "store"
    run(cli, "extract", folder, "-w", tiny_weights, "--scales", "224,256", "-o", store, "-q")
    run(cli, "export", store, "--aggregate", "stack", "--csv", d / "stack.csv")
    run(cli, "export", store, "--raw", "--csv", d / "raw.csv")
    return store, read_export(d / "stack.csv"), read_export(d / "raw.csv")


def test_paths_bytes_arrays_and_pil_give_the_rows_of_the_command_line(ext, tiny_images, cli_store):
    from PIL import Image

    _, (ids, _, want), _ = cli_store
    assert [Path(p).name for p in tiny_images] == ids
    by_path = ext.describe(tiny_images)
    assert by_path.shape == (3, ext.dim) and by_path.dtype == np.float32
    assert by_path.flags["C_CONTIGUOUS"]
    assert rel(by_path, want) <= 1e-6
    by_bytes = ext.describe([Path(p).read_bytes() for p in tiny_images])
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in tiny_images]
    by_array = ext.describe(arrays)
    by_pil = ext.describe([Image.open(p) for p in tiny_images])
    for x in (by_bytes, by_array, by_pil):
        assert rel(x, by_path) <= 1e-6
    # Rows follow the input order, whatever order the engine finished them in.
    shuffled = ext.describe([tiny_images[2], arrays[0], tiny_images[1]])
    assert rel(shuffled, by_path[[2, 0, 1]]) <= 1e-6


def test_raw_descriptors_equal_export_raw(ext, tiny_images, cli_store):
    _, _, (_, _, want) = cli_store
    r = ext.describe(tiny_images, raw=True)
    assert r.shape == (3, 1, len(SCALES), want.shape[1] // len(SCALES))
    assert rel(r.reshape(3, -1), want) <= 1e-6


def test_store_reads_as_numpy_and_pandas(ext, tiny_images, cli_store):
    store_dir, (ids, labels, want), (_, _, raw) = cli_store
    s = vggfeat.Store(store_dir)
    assert s.ids == ids and len(s) == 3 and s.failed == []
    assert s.manifest["scales"] == list(SCALES)
    assert s.manifest["nets"][0]["sha256"] == ext.nets[0]["sha256"]
    got_ids, x = s.to_numpy(aggregate="stack")
    assert got_ids == ids and x.dtype == np.float32 and rel(x, want) <= 1e-6
    assert rel(s.to_numpy(raw=True)[1], raw) <= 1e-6
    df = s.to_pandas()
    assert list(df.columns[:1]) == ["id"] and "features" in df
    assert rel(np.stack(df.features), want) <= 1e-6
    with pytest.raises(ValueError, match="aggregate"):
        s.to_numpy(aggregate="median")
    with pytest.raises(ValueError, match="nets"):
        s.to_numpy(nets=[3])


def test_extract_writes_the_store_the_command_line_writes(ext, tiny_images, cli_store, tmp_path):
    store_dir, (ids, _, want), _ = cli_store
    folder = Path(tiny_images[0]).parent
    s = ext.extract(folder, out=tmp_path / "store")
    assert s.summary["extracted"] == 3 and s.summary["failed"] == []
    assert s.ids == ids and rel(s.to_numpy()[1], want) <= 1e-6
    again = ext.extract(folder, out=tmp_path / "store")
    assert again.summary["already_done"] == 3


def test_batches_of_a_listed_dataset(ext, caltech):
    classes = ["Faces", "watch"]
    b = ext.iter_batches(caltech, batch_size=3, classes=classes, limit_per_class=4)
    assert len(b) == 3
    got = list(b)
    ids = [i for chunk in got for i in chunk[0]]
    labels = [l for chunk in got for l in chunk[2]]
    assert len(ids) == 8 and labels[0] == ["Faces"] and labels[-1] == ["watch"]
    x = np.concatenate([chunk[1] for chunk in got])
    paths = [str(caltech / i) for i in ids]
    assert rel(x, ext.describe(paths)) <= 1e-6
    assert b.failed == []


def test_the_extractor_pickles_by_its_configuration(ext, tiny_images):
    copy = pickle.loads(pickle.dumps(ext))
    assert copy.config == ext.config
    assert rel(copy.describe(tiny_images[:1]), ext.describe(tiny_images[:1])) == 0.0


def test_another_thread_runs_while_describe_computes(ext, tiny_images):
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    time.sleep(0.05)
    before = len(ticks)
    t0 = time.perf_counter()
    ext.describe(tiny_images * 4)
    t1 = time.perf_counter()
    done.set()
    t.join()
    during = [x for x in ticks if t0 <= x <= t1]
    # With the interpreter held, the ticking thread would not run at all during the call.
    assert before > 0 and len(during) >= 10, (t1 - t0, len(during))


def test_progress_reaches_a_callback(ext, tiny_images):
    events = []
    ext.describe(tiny_images, progress=lambda e, *a: events.append((e, a)))
    assert events[0] == ("begin", ("describe", "images", 3))
    assert sum(a[0] for e, a in events if e == "advance") == 3
    assert events[-1] == ("end", ())


def test_info_describes_a_checkpoint(tiny_weights):
    i = vggfeat.info(tiny_weights)
    assert i["config"] == "D" and i["params"] > 0 and i["layers"][0]["name"] == "conv1_1"
