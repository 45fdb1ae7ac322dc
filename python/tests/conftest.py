"""Shared fixtures: `../shared` beside the checkout (the tiny VGG-D fixture, Caltech-101), the
`vggfeat` binary the command-line comparisons run (`VGGFEAT_BIN`, default the debug build), and
temporary folders. Missing data is an error, never a skip: these tests must not pass vacuously."""

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def _need(p: Path) -> Path:
    assert p.exists(), f"{p} is missing: the tests need ../shared beside the checkout"
    return p


@pytest.fixture(scope="session")
def tiny_weights() -> str:
    return str(_need(SHARED / "fixtures/vgg-d-tiny/weights.safetensors"))


@pytest.fixture(scope="session")
def tiny_images() -> list:
    d = _need(SHARED / "fixtures/vgg-d-tiny/images")
    return sorted(str(p) for p in d.glob("*.png"))


@pytest.fixture(scope="session")
def caltech() -> Path:
    return _need(SHARED / "datasets/caltech101/101_ObjectCategories")


@pytest.fixture(scope="session")
def cli() -> str:
    b = Path(os.environ.get("VGGFEAT_BIN", REPO / "target/debug/vggfeat"))
    assert b.exists(), f"{b} is missing: build it (cargo build) or set VGGFEAT_BIN"
    return str(b)


def run(cli: str, *args: str) -> subprocess.CompletedProcess:
    """Runs the command line; fails the test with its stderr when it does not exit 0."""
    p = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, f"vggfeat {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr}"
    return p


def read_export(path) -> tuple:
    """(ids, labels, matrix) of an `export --csv` file."""
    ids, labels, rows = [], [], []
    with open(path, newline="") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            ids.append(row[0])
            labels.append(row[1])
            rows.append([float(x) for x in row[2:]])
    return ids, labels, np.asarray(rows, dtype=np.float32)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest per-row relative L2 difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = np.linalg.norm((a - b).reshape(len(a), -1), axis=1)
    den = np.maximum(np.linalg.norm(b.reshape(len(b), -1), axis=1), 1e-12)
    return float((num / den).max())
