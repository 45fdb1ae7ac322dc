"""vggfeat: very deep convolutional networks (Simonyan & Zisserman, VGG-16/19) as a
transfer-learning tool, from Python.

The paper's image descriptors (dense multi-scale, flip-averaged, L2-normalised, averaged or
stacked across scales) as numpy arrays, computed by vggfeat's CPU engine with the interpreter
released; feature stores read as numpy or pandas; scikit-learn estimators in
``vggfeat.sklearn``::

    import vggfeat
    ext = vggfeat.Extractor("vgg16.safetensors", scales=(256, 384, 512))
    X = ext.describe(["cat.jpg", "dog.png"])          # (2, d) float32, rows in input order
    store = ext.extract("101_ObjectCategories", out="store/")
    ids, X = store.to_numpy()
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _vggfeat
from ._vggfeat import CheckpointError, ImageError, StoreError

__all__ = [
    "Extractor",
    "Store",
    "info",
    "localise",
    "ImageError",
    "CheckpointError",
    "StoreError",
    "Batches",
    "__version__",
]
__version__ = _vggfeat.__version__

_ON_ERROR = ("raise", "skip")


def info(weights: "os.PathLike[str] | str") -> dict:
    """Describes a checkpoint: configuration, layer table with shapes, parameter count, expected
    preprocessing (the dict of ``vggfeat info --json``)."""
    return json.loads(_vggfeat.info_json(os.fspath(weights)))


def localise(
    input: "os.PathLike[str] | str",
    loc: "Sequence[os.PathLike[str] | str] | os.PathLike[str] | str",
    out: "os.PathLike[str] | str",
    classifiers: Sequence["os.PathLike[str] | str"] = (),
    protocol: str = "center",
    scales: Sequence[int] = (),
    gt_class: bool = False,
    split: str = "test",
    merge_iou: float = 0.5,
    flip: bool = True,
    pictures: int = 8,
    progress: Any = None,
) -> dict:
    """Localises objects with the paper's box-regression nets, as ``vggfeat localise`` does.

    ``input``: a VOC-format devkit (scored against its boxes, image set ``split``) or any input
    the extractor reads (boxes only). ``loc``: localisers, each a checkpoint or run folder of
    ``vggfeat train --task localise``, or ``"baseline:SPLIT"`` (the mean box of a devkit set at
    the image centre); their boxes are pooled before merging. ``classifiers``: classification
    checkpoints ranking the classes (top-1 / top-5) and rating the boxes. ``protocol``:
    ``"center"`` (the central crop) or ``"dense"`` (every window, merged with OverFeat's greedy
    merging at ``merge_iou``). ``scales``: test scales (default each localiser's own).
    ``gt_class``: the box of the ground-truth class (protocol 1's variant). ``out`` gets
    boxes.csv, metrics.json, table.md, problems.txt and ``pictures`` SVG pictures.

    Returns the report: ``images``, ``pairs``, ``localisation_error`` (``gt_class``, ``top1``,
    ``top5``; ``None`` without ground truth), ``problems`` (every image or annotation not used,
    and why) and ``seconds``. A bad value is a ``ValueError`` naming the keyword; an unreadable
    checkpoint a ``CheckpointError``."""
    if isinstance(loc, (str, os.PathLike)):
        loc = [loc]
    return json.loads(
        _vggfeat.localise(
            os.fspath(input),
            os.fspath(out),
            [os.fspath(l) for l in loc],
            [os.fspath(c) for c in classifiers],
            protocol,
            [int(s) for s in scales],
            bool(gt_class),
            split,
            float(merge_iou),
            bool(flip),
            int(pictures),
            _progress(progress),
        )
    )


def _image(item: Any, i: int) -> Any:
    """One input as the engine takes it: a path (str), encoded bytes, or a C-contiguous
    (H, W, 3) uint8 array. PIL images and grey or RGBA arrays are converted; anything else is a
    TypeError naming the position."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if hasattr(item, "convert") and hasattr(item, "mode") and hasattr(item, "size"):
        item = np.asarray(item.convert("RGB"))  # a PIL image
    if isinstance(item, np.ndarray):
        a = item
        if a.dtype != np.uint8:
            raise TypeError(f"images[{i}]: an array of {a.dtype}; expected uint8 pixels (0..255)")
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        elif a.ndim == 3 and a.shape[2] == 4:
            a = a[:, :, :3]
        elif a.ndim == 3 and a.shape[2] == 1:
            a = np.repeat(a, 3, axis=2)
        if a.ndim != 3 or a.shape[2] != 3:
            raise TypeError(f"images[{i}]: an array of shape {item.shape}; expected (H, W, 3)")
        return np.ascontiguousarray(a)
    raise TypeError(
        f"images[{i}]: a {type(item).__name__}; expected a path, bytes, an (H, W, 3) uint8 "
        "array or a PIL image"
    )


class _Progress:
    """The engine's progress events shown as a tqdm bar when tqdm is installed, else as a line on
    stderr at the end of each task; notes (skipped inputs) are printed either way."""

    def __init__(self) -> None:
        self.bar = None
        self.done = 0
        self.total = 0
        self.task = ""
        try:
            from tqdm.auto import tqdm  # noqa: F401

            self.tqdm = tqdm
        except ImportError:
            self.tqdm = None

    def __call__(self, event: str, *args: Any) -> None:
        if event == "begin":
            self.task, unit, self.total = args
            self.done = 0
            if self.tqdm is not None:
                self.bar = self.tqdm(total=self.total, desc=self.task, unit=unit)
        elif event == "advance":
            self.done += args[0]
            if self.bar is not None:
                self.bar.update(args[0])
        elif event == "status" and self.bar is not None:
            self.bar.set_postfix_str(args[0])
        elif event == "note":
            if self.bar is not None:
                self.bar.write(args[0], file=sys.stderr)
            else:
                print(args[0], file=sys.stderr)
        elif event == "end":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            else:
                print(f"{self.task}: {self.done}/{self.total} done", file=sys.stderr)


def _progress(progress: Any) -> Any:
    if progress is True:
        return _Progress()
    if progress in (None, False):
        return None
    if callable(progress):
        return progress
    raise ValueError("progress: expected True, False or a callable(event, *args)")


def _check_on_error(on_error: str) -> None:
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error: unknown value {on_error!r} (expected 'raise' or 'skip')")


def _failures(failed: List[Tuple[int, str, str]], on_error: str) -> List[Tuple[int, str]]:
    if failed and on_error == "raise":
        index, name, reason = failed[0]
        err = ImageError(f"{name}: {reason}")
        err.index = index
        err.item = name
        raise err
    return [(i, reason) for i, _, reason in failed]


def _inputs(data: Any) -> List[str]:
    if isinstance(data, (str, os.PathLike)):
        return [os.fspath(data)]
    return [os.fspath(d) for d in data]


class Extractor:
    """VGG networks ready to describe images: the paper's per-scale descriptors (spatial mean of
    ``layer``'s dense map, averaged with the horizontal flip) at every scale, aggregated
    (``"stack"`` or ``"avg"``), nets fused by stacking, L2-normalised.

    Parameters (the library's, with its defaults): ``weights`` a checkpoint path or a list of
    them (safetensors, ``.pth``, Keras ``.h5``); ``layer`` (``"fc7"``, ``"pool5"``, ... ; default
    fc7, or pool5 for weights without fc layers); ``scales`` (smallest image side Q); ``flip``;
    ``preprocess`` (``"auto"``: the checkpoint's, ``"torchvision"``, ``"caffe"``);
    ``precision`` (``"f32"``, ``"bf16"`` on CPUs with AVX512-BF16, ``"int8"`` on CPUs with
    AVX512-VNNI); ``aggregate``; ``threads``
    (compute threads, default all cores); ``batch`` (inputs per forward pass); ``engine``;
    ``device``; ``max_pixels``; ``decode_threads``; ``progress`` (``True`` for a bar, or a
    callable ``progress(event, *args)``).

    A bad value is a ``ValueError`` naming the keyword. The extractor pickles by its parameters
    (Ray, Spark and multiprocessing ship it and load the weights where it lands).
    """

    def __init__(
        self,
        weights: Any,
        layer: Optional[str] = None,
        scales: Sequence[int] = (256, 384, 512),
        flip: bool = True,
        preprocess: str = "auto",
        precision: str = "f32",
        aggregate: str = "stack",
        threads: Optional[int] = None,
        batch: int = 2,
        engine: str = "auto",
        device: str = "cpu",
        max_pixels: int = 100_000_000,
        decode_threads: int = 1,
        progress: Any = False,
    ) -> None:
        if isinstance(weights, (str, os.PathLike)):
            weights = [weights]
        if isinstance(scales, int):
            scales = [scales]
        self._config = dict(
            weights=[os.fspath(w) for w in weights],
            layer=layer,
            scales=[int(q) for q in scales],
            flip=bool(flip),
            preprocess=preprocess,
            precision=precision,
            aggregate=aggregate,
            threads=threads,
            batch=int(batch),
            engine=engine,
            device=device,
            max_pixels=int(max_pixels),
            decode_threads=int(decode_threads),
        )
        self.progress = progress
        for key in ("batch", "max_pixels", "decode_threads"):
            if self._config[key] < 1:
                raise ValueError(f"{key}: must be at least 1")
        if threads is not None and int(threads) < 1:
            raise ValueError("threads: must be at least 1")
        if any(q < 1 for q in self._config["scales"]):
            raise ValueError("scales: every scale must be at least 1")
        self._inner = _vggfeat._Extractor(**self._config)

    # Pickling by configuration: the weights are loaded again where the object lands.
    def __getstate__(self) -> dict:
        return {"config": self._config, "progress": self.progress}

    def __setstate__(self, state: dict) -> None:
        self._config = state["config"]
        self.progress = state["progress"]
        self._inner = _vggfeat._Extractor(**self._config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"vggfeat.Extractor({args})"

    @property
    def config(self) -> dict:
        """The parameters the extractor was made with."""
        return dict(self._config)

    @property
    def dim(self) -> int:
        """The number of columns of :meth:`describe`'s rows."""
        return self._inner.dim

    @property
    def nets(self) -> list:
        """Each net as a store's manifest records it (weights SHA-256, configuration, layer,
        dimension, preprocessing, precision)."""
        return json.loads(self._inner.nets_json())

    def describe(
        self,
        images: Iterable[Any],
        raw: bool = False,
        on_error: str = "raise",
        progress: Any = None,
    ):
        """Descriptors of ``images`` (paths, bytes of encoded files, (H, W, 3) uint8 arrays or
        PIL images), one row per image in input order: an (n, d) float32 array, C-contiguous,
        aggregated as the extractor says; with ``raw=True`` the (n, nets, scales, d) descriptors
        before any normalisation (what ``vggfeat export --raw`` writes).

        ``on_error="raise"`` (default): an image that cannot be used raises
        :class:`ImageError` naming it (its path, or ``images[i]``) and the reason.
        ``on_error="skip"``: returns ``(X, failed)``, the rows of the images that could be used
        and ``failed``, a list of ``(index, reason)`` for the others.
        """
        _check_on_error(on_error)
        items = [_image(x, i) for i, x in enumerate(images)]
        cb = _progress(self.progress if progress is None else progress)
        x, kept, failed = self._inner.describe(items, bool(raw), cb)
        failures = _failures(failed, on_error)
        return x if on_error == "raise" else (x, failures)

    def extract(
        self,
        data: Any,
        out: "os.PathLike[str] | str",
        root: Optional[str] = None,
        voc_split: str = "trainval",
        classes: Optional[Sequence[str]] = None,
        limit_per_class: Optional[int] = None,
        chunk: int = 32,
        retry_failed: bool = False,
        progress: Any = None,
    ) -> "Store":
        """Extracts ``data`` (a folder of class folders, a VOC devkit, a list file, a CSV / TSV /
        Parquet table, WebDataset tar shards, or a list of them) into the resumable feature
        store ``out``, exactly as ``vggfeat extract`` does, and opens it. Inputs that fail are
        recorded in the store (``Store.failed``) and the run goes on; running again resumes.
        The run's counts are in ``Store.summary``."""
        cb = _progress(self.progress if progress is None else progress)
        summary = self._inner.extract(
            _inputs(data),
            os.fspath(out),
            None if root is None else os.fspath(root),
            voc_split,
            None if classes is None else list(classes),
            limit_per_class,
            int(chunk),
            bool(retry_failed),
            cb,
        )
        store = Store(out)
        store.summary = json.loads(summary)
        return store

    def iter_batches(
        self,
        data: Any,
        batch_size: int = 256,
        raw: bool = False,
        on_error: str = "raise",
        root: Optional[str] = None,
        voc_split: str = "trainval",
        classes: Optional[Sequence[str]] = None,
        limit_per_class: Optional[int] = None,
    ) -> "Batches":
        """Describes a dataset (any input :meth:`extract` takes) without a store, ``batch_size``
        images at a time: yields ``(ids, X, labels)`` per batch. With ``on_error="skip"`` the
        images that cannot be used are left out of their batch and listed in the iterator's
        ``failed`` (``(id, reason)``) as it goes; with ``"raise"`` the first one raises."""
        _check_on_error(on_error)
        if int(batch_size) < 1:
            raise ValueError("batch_size: must be at least 1")
        listing = _vggfeat.Listing(
            _inputs(data),
            None if root is None else os.fspath(root),
            voc_split,
            None if classes is None else list(classes),
            limit_per_class,
        )
        return Batches(self, listing, int(batch_size), bool(raw), on_error)


class Batches:
    """The iterator of :meth:`Extractor.iter_batches`: ``(ids, X, labels)`` per batch, and the
    images it could not use in ``failed``."""

    def __init__(self, ext: Extractor, listing: Any, batch_size: int, raw: bool, on_error: str):
        self._ext, self._listing = ext, listing
        self._size, self._raw, self._on_error = batch_size, raw, on_error
        self._start = 0
        self.failed: List[Tuple[str, str]] = []

    def __len__(self) -> int:
        return (len(self._listing) + self._size - 1) // self._size

    def __iter__(self) -> Iterator[Tuple[List[str], np.ndarray, List[List[str]]]]:
        return self

    def __next__(self) -> Tuple[List[str], np.ndarray, List[List[str]]]:
        start, end = self._start, self._start + self._size
        if start >= len(self._listing):
            raise StopIteration
        self._start = end
        cb = _progress(self._ext.progress)
        x, kept, failed = self._ext._inner.describe_listed(self._listing, start, end, self._raw, cb)
        ids, labels = self._listing.ids(start, end), self._listing.labels(start, end)
        for i, _, reason in failed:
            self.failed.append((ids[i], reason))
        _failures([(start + i, name, reason) for i, name, reason in failed], self._on_error)
        return [ids[i] for i in kept], x, [labels[i] for i in kept]


class Store:
    """A feature store written by ``vggfeat extract`` (or :meth:`Extractor.extract`), read
    without its descriptors in memory: ``ids`` and ``labels`` of the successful records (id
    order), ``failed`` (``(id, reason)``), ``manifest`` (what it was computed with),
    ``warnings`` (incomplete, or stale against its inputs)."""

    def __init__(self, path: "os.PathLike[str] | str") -> None:
        self.path = os.fspath(path)
        self._inner = _vggfeat._Store(self.path)
        self.summary: Optional[dict] = None

    def __repr__(self) -> str:
        return f"vggfeat.Store({self.path!r})"

    def __len__(self) -> int:
        return len(self._inner.ids)

    @property
    def ids(self) -> List[str]:
        return self._inner.ids

    @property
    def labels(self) -> List[List[str]]:
        return self._inner.labels

    @property
    def failed(self) -> List[Tuple[str, str]]:
        return self._inner.failed

    @property
    def manifest(self) -> dict:
        return json.loads(self._inner.manifest_json())

    @property
    def warnings(self) -> List[str]:
        return self._inner.warnings()

    def to_numpy(
        self, aggregate: str = "stack", nets: Any = "all", raw: bool = False
    ) -> Tuple[List[str], np.ndarray]:
        """``(ids, X)``: the descriptors of every successful record as one (n, d) float32 array
        in id order, aggregated (``"stack"`` or ``"avg"``) and L2-normalised as ``vggfeat
        export`` writes them, or ``raw`` (each net's per-scale descriptors, unnormalised).
        ``nets``: ``"all"`` or indices, fused by stacking. Memory: the array, filled row by row
        from the store."""
        if not isinstance(nets, str):
            nets = ",".join(str(int(n)) for n in nets)
        x = self._inner.to_numpy(aggregate, nets, bool(raw))
        return self.ids, x

    def neighbours(
        self,
        ids: Optional[Sequence[str]] = None,
        images: Optional[Sequence["os.PathLike[str] | str"]] = None,
        k: int = 10,
        aggregate: str = "stack",
        nets: Any = "all",
        exclude_self: bool = True,
        block: int = 4096,
        weights: Optional[Sequence["os.PathLike[str] | str"]] = None,
        out: "os.PathLike[str] | str | None" = None,
        progress: Any = None,
        index: "os.PathLike[str] | str | None" = None,
        expansion: Optional[int] = None,
    ) -> List[dict]:
        """Exact cosine k-NN among the store's L2-normalised descriptors, as ``vggfeat
        neighbours`` runs it: queries by store id (``ids``) and by image file (``images``,
        described with the store's own nets), in that order. One dict per query: ``query``,
        ``row`` (its own row, for an id), and its neighbours best first: ``rows`` (int64, rows of
        :meth:`to_numpy`), ``ids``, ``labels``, ``similarities`` (float32). Ties go to the lower
        row; a query by id leaves itself out unless ``exclude_self=False``; fewer than ``k`` when
        the store is smaller. ``out``: a folder for ``neighbours.csv`` and ``neighbours.html``.
        ``index``: an index folder from :meth:`build_index` (or ``vggfeat index``) of this store:
        its graph proposes the neighbours, scored exactly (approximate, as good as its recall);
        ``expansion`` overrides its search expansion."""
        if not isinstance(nets, str):
            nets = ",".join(str(int(n)) for n in nets)
        queries, _warnings = _vggfeat.neighbours(
            self.path,
            [str(i) for i in (ids or [])],
            [os.fspath(p) for p in (images or [])],
            int(k),
            aggregate,
            nets,
            bool(exclude_self),
            int(block),
            [os.fspath(w) for w in (weights or [])],
            None if out is None else os.fspath(out),
            _progress(progress),
            None if index is None else os.fspath(index),
            None if expansion is None else int(expansion),
        )
        return [
            {
                "query": name,
                "row": row,
                "rows": np.asarray(rows, dtype=np.int64),
                "ids": nids,
                "labels": labels,
                "similarities": np.asarray(sims, dtype=np.float32),
            }
            for name, row, rows, nids, labels, sims in queries
        ]

    def build_index(
        self,
        out: "os.PathLike[str] | str",
        quantization: str = "bf16",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion: int = 64,
        recall_queries: int = 1000,
        recall_k: int = 10,
        seed: int = 0,
        aggregate: str = "stack",
        nets: Any = "all",
        progress: Any = None,
    ) -> dict:
        """Builds an approximate (HNSW) index of the store into the folder ``out``, as ``vggfeat
        index`` does, for :meth:`neighbours` (``index=out``) on stores of millions of rows.
        ``quantization``: ``f32``, ``bf16``, ``f16`` or ``i8`` (bytes per dimension 4, 2, 2, 1).
        Its recall@``recall_k`` against the exact search is measured on ``recall_queries`` rows
        drawn with ``seed`` (0: not measured). Returns ``index.json`` as a dict (``rows``,
        ``dim``, ``bytes``, ``build_seconds``, ``recall`` ...)."""
        if not isinstance(nets, str):
            nets = ",".join(str(int(n)) for n in nets)
        meta, _warnings = _vggfeat.build_index(
            self.path,
            os.fspath(out),
            quantization,
            int(connectivity),
            int(expansion_add),
            int(expansion),
            int(recall_queries),
            int(recall_k),
            int(seed),
            aggregate,
            nets,
            _progress(progress),
        )
        return json.loads(meta)

    def to_pandas(self, aggregate: str = "stack", nets: Any = "all"):
        """A DataFrame with ``id``, ``label`` (``None`` for an image without one; or ``labels``,
        lists, when an image has more than one) and ``features`` (one float32 array per row, views
        of one matrix), as the Parquet export reads back."""
        import pandas as pd

        ids, x = self.to_numpy(aggregate, nets)
        labels = self.labels
        frame = {"id": ids}
        if all(len(l) <= 1 for l in labels):
            frame["label"] = [l[0] if l else None for l in labels]
        else:
            frame["labels"] = labels
        frame["features"] = list(x)
        return pd.DataFrame(frame)
