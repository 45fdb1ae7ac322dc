"""vggfeat.localise: the library's localisation job from Python, scored as the command line
scores it, its problems reported, bad values named."""

import json

import numpy as np
import pytest
from PIL import Image

import vggfeat
from conftest import run


def _devkit(root, boxes):
    """A VOC devkit of black images with one `thing` each: boxes maps id -> (w, h, xmin, ymin,
    xmax, ymax) in VOC's 1-based inclusive pixels; a None box writes an XML that does not
    parse."""
    for d in ["JPEGImages", "Annotations", "ImageSets/Main"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, b in boxes.items():
        w, h = (b[0], b[1]) if b else (40, 40)
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / f"JPEGImages/{i}.png")
        xml = (
            f"<annotation><filename>{i}.png</filename><size><width>{w}</width><height>{h}"
            f"</height></size><object><name>thing</name><bndbox><xmin>{b[2]}</xmin><ymin>{b[3]}"
            f"</ymin><xmax>{b[4]}</xmax><ymax>{b[5]}</ymax></bndbox></object></annotation>"
            if b
            else "<annotation><object>"
        )
        (root / f"Annotations/{i}.xml").write_text(xml)
    (root / "ImageSets/Main/test.txt").write_text("\n".join(boxes))


def test_localise_scores_the_baseline_as_the_cli_does_and_names_bad_files(tmp_path, cli):
    # Centred boxes a quarter in from each side (the baseline's mean box is exactly right on
    # them), one box in a corner (a miss) and one annotation that does not parse.
    boxes = {f"c{i}": (40 + 8 * i, 40, (40 + 8 * i) // 4 + 1, 11, 3 * (40 + 8 * i) // 4, 30)
             for i in range(3)}
    boxes["corner"] = None
    kit = tmp_path / "kit"
    _devkit(kit, boxes)
    # The corner image: scored against a box the mean misses (IoU 0 with the centre).
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(kit / "JPEGImages/d0.png")
    (kit / "Annotations/d0.xml").write_text(
        "<annotation><filename>d0.png</filename><size><width>40</width><height>40</height>"
        "</size><object><name>thing</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>8</xmax>"
        "<ymax>8</ymax></bndbox></object></annotation>"
    )
    (kit / "ImageSets/Main/test.txt").write_text("\n".join([*boxes, "d0"]))
    (kit / "ImageSets/Main/train.txt").write_text("\n".join(f"c{i}" for i in range(3)))

    out = tmp_path / "py"
    r = vggfeat.localise(kit, "baseline:train", out, gt_class=True, pictures=2)
    # Three hits of four scored objects; the unparsable annotation named, not scored.
    assert r["localisation_error"]["gt_class"] == pytest.approx(0.25)
    assert r["localisation_error"]["top1"] is None
    assert r["pairs"] == 4
    assert any("corner.xml" in p for p in r["problems"]), r["problems"]
    assert (out / "boxes.csv").read_text().count("\n") >= 5
    assert len(list((out / "pictures").glob("*.svg"))) == 2

    run(cli, "localise", kit, "--loc", "baseline:train", "--gt-class", "--no-progress",
        "--pictures", "0", "-o", tmp_path / "cli")
    m = json.loads((tmp_path / "cli/metrics.json").read_text())
    assert m["localisation_error"] == r["localisation_error"]


def test_localise_names_bad_values(tmp_path):
    with pytest.raises(ValueError, match="protocol"):
        vggfeat.localise(tmp_path, "baseline:train", tmp_path / "o", protocol="diagonal")
    with pytest.raises(ValueError, match="baseline"):
        vggfeat.localise(tmp_path, "baseline:", tmp_path / "o")
