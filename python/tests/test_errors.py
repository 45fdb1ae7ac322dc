"""Bad inputs: a missing file, a corrupt JPEG, wrong keyword values, a bad checkpoint, an odd
array; each a Python exception naming it, the interpreter alive afterwards; on_error="skip"
reports what it left out."""

from pathlib import Path

import numpy as np
import pytest

import vggfeat


@pytest.fixture(scope="module")
def ext(tiny_weights):
    return vggfeat.Extractor(tiny_weights, scales=(224,))


def test_a_missing_file_and_a_corrupt_jpeg_name_the_item(ext, tiny_images, caltech, tmp_path):
    with pytest.raises(vggfeat.ImageError, match="nothing-here.jpg") as e:
        ext.describe([tiny_images[0], str(tmp_path / "nothing-here.jpg")])
    assert e.value.index == 1 and isinstance(e.value, OSError)
    jpeg = (caltech / "Faces/image_0001.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(vggfeat.ImageError, match="cut.jpg.*truncated"):
        ext.describe([cut])
    with pytest.raises(vggfeat.ImageError, match=r"images\[0\] \(bytes\)"):
        ext.describe([b"not an image at all"])
    # The interpreter goes on, and so does the extractor.
    assert ext.describe(tiny_images[:1]).shape[0] == 1


def test_skip_returns_the_kept_rows_and_every_failure(ext, tiny_images, tmp_path):
    items = [str(tmp_path / "gone.png"), tiny_images[0], b"\x89PNG broken", tiny_images[1]]
    x, failed = ext.describe(items, on_error="skip")
    assert x.shape[0] == 2
    assert [i for i, _ in failed] == [0, 2]
    assert "No such file" in failed[0][1] or "cannot read" in failed[0][1]
    assert np.allclose(x, ext.describe([tiny_images[0], tiny_images[1]]))


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"precision": "f64"}, "precision"),
        ({"preprocess": "opencv"}, "preprocess"),
        ({"aggregate": "median"}, "aggregate"),
        ({"layer": "conv9_9"}, "layer"),
        ({"scales": (100,)}, "scales"),
        ({"scales": (224, 224)}, "scales"),
        ({"batch": 0}, "batch"),
        ({"device": "tpu"}, "device"),
        ({"engine": "magic"}, "engine"),
    ],
)
def test_a_wrong_keyword_value_is_a_value_error_naming_it(tiny_weights, kw, name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        vggfeat.Extractor(tiny_weights, **kw)


def test_bad_checkpoints_and_arguments(tmp_path, ext):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(vggfeat.CheckpointError, match="w.safetensors"):
        vggfeat.Extractor(bad)
    with pytest.raises(OSError):
        vggfeat.Extractor(tmp_path / "none.safetensors")
    with pytest.raises(TypeError, match=r"images\[1\]"):
        ext.describe([b"x", 42])
    with pytest.raises(TypeError, match=r"images\[0\].*float"):
        ext.describe([np.zeros((8, 8, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match="on_error"):
        ext.describe([], on_error="ignore")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        vggfeat.Store(tmp_path)
