#!/usr/bin/env python3
"""The OpenVINO side of scripts/bench_extract.sh: what a user would write to get the paper's
dense multi-scale descriptors of a conv-only VGG-16 with OpenVINO, as one loop over the images:
decode (Pillow), isotropic rescale to each scale Q (Pillow's bilinear, as vggfeat does), the
Caffe convention (BGR, 0..255, minus the mean pixel), the conv body on the image and its flip
(one batch of 2, a dynamic-shape model), the spatial mean of pool5, averaged over the flip.

  python scripts/ov_extract.py --export WEIGHTS.safetensors MODEL.onnx   # once, not timed
  python scripts/ov_extract.py ROOT MODEL.onnx --classes A,B --limit-per-class K
        --scales 256,384,512 [--precision f32|default|int8] [--out desc.npy] [--compare RAW.csv]
  python scripts/ov_extract.py ROOT MODEL.onnx --quantize INT8.xml --classes A,B
        --limit-per-class K --calibration 20 --scales 384   # once, not timed

--quantize makes the INT8 model a user of OpenVINO would make: NNCF's post-training
quantization (`nncf.quantize`, its defaults: per-channel symmetric weights, per-tensor
activations, min/max statistics) of the same exported body, calibrated on CALIBRATION images
that the timed run does not see (the files after each class's first K, in turn over the
classes) at the first of --scales, with flips, exactly as the loop feeds the net.
`--precision int8` then reads INT8.xml (--int8-model) in place of MODEL.onnx.

ROOT is a folder of class folders; the images are each class's first K files in sorted order,
as `vggfeat extract ROOT --classes A,B --limit-per-class K` takes them. The descriptors (one
row per image, the scales side by side) go to --out; --compare reads `vggfeat export --raw` of
the same images and prints the largest relative difference per scale, to show that both
compute the same thing (--compare-npy: of descriptors saved earlier with --out, without
running the network). JPEG decoders differ (Pillow's libjpeg against the `image` crate's), so
even f32 against f32 differs by about 1e-2 on JPEG inputs; on PNGs the two agree to 1e-4.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np

MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32).reshape(3, 1, 1)
CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def conv_body(weights):
    """The torchvision-named conv body in `weights` (safetensors) as a PyTorch module, f32."""
    import torch
    from safetensors.torch import load_file

    sd = {k: v.float() for k, v in load_file(weights).items()}
    layers, c_in = [], 3
    for v in CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            layers += [torch.nn.Conv2d(c_in, v, 3, padding=1), torch.nn.ReLU()]
            c_in = v
    body = torch.nn.Sequential(*layers).eval()
    body.load_state_dict({k[len("features."):]: v for k, v in sd.items()})
    return body


def export(weights, path):
    """The torchvision-named conv body in `weights` as ONNX with dynamic height and width."""
    import torch

    body = conv_body(weights)
    with torch.no_grad():
        torch.onnx.export(body, (torch.zeros(2, 3, 224, 224),), path, input_names=["x"],
                          output_names=["pool5"], dynamic_axes={"x": {2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)


def rescale(img, q):
    from PIL import Image

    w, h = img.size
    if w <= h:
        nw, nh = q, max(1, round(h * q / w))
    else:
        nw, nh = max(1, round(w * q / h)), q
    return img.resize((nw, nh), Image.BILINEAR)


def net_input(img, q):
    """The batch the net sees for one image at scale q: it and its flip, Caffe convention."""
    r = rescale(img, q)
    x = np.asarray(r, np.float32).transpose(2, 0, 1)[::-1] - MEAN_BGR
    return np.ascontiguousarray(np.stack([x, x[:, :, ::-1]]))


def quantize(a, q):
    """NNCF post-training INT8 quantization of the exported body (see the module's doc)."""
    import nncf
    import openvino as ov
    from PIL import Image

    classes = a.classes.split(",")
    pools = [sorted(os.listdir(os.path.join(a.root, c)))[a.limit_per_class:] for c in classes]
    paths = []
    while len(paths) < a.calibration and any(pools):
        for c, pool in zip(classes, pools):
            if pool and len(paths) < a.calibration:
                paths.append(os.path.join(a.root, c, pool.pop(0)))
    model = ov.Core().read_model(a.model)
    model.reshape({"x": [2, 3, -1, -1]})
    data = nncf.Dataset(paths, lambda p: net_input(Image.open(p).convert("RGB"), q))
    t = time.perf_counter()
    qm = nncf.quantize(model, data, subset_size=len(paths))
    ov.save_model(qm, a.quantize)
    print(f"NNCF INT8 model {a.quantize}: {len(paths)} calibration images at Q={q}, "
          f"{time.perf_counter() - t:.0f} s", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("model")
    ap.add_argument("--classes", default="")
    ap.add_argument("--limit-per-class", type=int)
    ap.add_argument("--export", action="store_true", help="write MODEL from the weights LIST")
    ap.add_argument("--scales", default="256,384,512")
    ap.add_argument("--precision", choices=["f32", "default", "int8"], default="default")
    ap.add_argument("--quantize", metavar="INT8_XML", help="write the NNCF INT8 model")
    ap.add_argument("--calibration", type=int, default=20, help="calibration images")
    ap.add_argument("--int8-model", help="the INT8 model --precision int8 runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--compare")
    ap.add_argument("--compare-npy")
    ap.add_argument("--label", default="OpenVINO")
    ap.add_argument("--what", default="vggfeat")
    a = ap.parse_args()
    if a.export:
        export(a.root, a.model)
        return
    scales = [int(s) for s in a.scales.split(",")]
    ids = []
    for c in a.classes.split(","):
        names = sorted(os.listdir(os.path.join(a.root, c)))[: a.limit_per_class]
        ids += [f"{c}/{n}" for n in names]
    if a.compare_npy:
        compare(np.load(a.compare_npy), ids, scales, a)
        return
    import openvino as ov
    from PIL import Image

    if a.quantize:
        quantize(a, scales[0])
        return

    paths = [os.path.join(a.root, i) for i in ids]
    cfg = {"INFERENCE_NUM_THREADS": a.threads, "PERFORMANCE_HINT": "LATENCY"}
    if a.precision == "f32":
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    core = ov.Core()
    if a.precision == "int8":
        model = core.read_model(a.int8_model)
    else:
        model = core.read_model(a.model)
    model.reshape({"x": [2, 3, -1, -1]})
    compiled = core.compile_model(model, "CPU", cfg)
    req = compiled.create_infer_request()
    t0, net = time.perf_counter(), 0.0
    rows = []
    for p in paths:
        img = Image.open(p).convert("RGB")
        row = []
        for q in scales:
            batch = net_input(img, q)
            t = time.perf_counter()
            req.infer({0: batch})
            m = req.get_output_tensor(0).data.mean(axis=(2, 3))
            net += time.perf_counter() - t
            row.append(0.5 * (m[0] + m[1]))
        rows.append(np.concatenate(row))
    wall = time.perf_counter() - t0
    desc = np.stack(rows)
    print(f"openvino ({compiled.get_property('INFERENCE_PRECISION_HINT')}): {len(paths)} images "
          f"in {wall:.1f} s ({len(paths) / wall:.2f} images/s end to end, "
          f"{len(paths) / net:.2f} images/s in the network)", file=sys.stderr)
    if a.out:
        np.save(a.out, desc)
    if a.compare:
        compare(desc, ids, scales, a)


def compare(desc, ids, scales, a):
    """Prints the largest relative L2 difference per scale between `desc` and a raw export."""
    with open(a.compare) as f:
        r = csv.reader(f)
        head = next(r)
        cols = [[j for j, h in enumerate(head) if f"_q{q}_d" in h] for q in scales]
        got = {row[0]: row for row in r}
    rel = [[] for _ in scales]
    for i, key in enumerate(ids):
        for s, c in enumerate(cols):
            v = np.array([float(got[key][j]) for j in c], np.float32)
            b = desc[i, s * len(c):(s + 1) * len(c)]
            rel[s].append(float(np.linalg.norm(v - b) / np.linalg.norm(b)))
    print(f"{a.label} against {a.what}, relative L2 difference per scale (median / largest): "
          + ", ".join(f"Q={q} {np.median(r):.1e} / {max(r):.1e}" for q, r in zip(scales, rel)),
          file=sys.stderr)

if __name__ == "__main__":
    main()
