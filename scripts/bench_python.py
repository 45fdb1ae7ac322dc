#!/usr/bin/env python3
"""Python-side benchmarks of the vggfeat package (scripts/bench_python.sh runs them):

* ``speed``: the same images described three ways, in one run, rounds taking them in turn:
  the command line's ``vggfeat extract`` (its own end-to-end rate, weights loading left out),
  ``vggfeat.Extractor.describe`` (one call over the paths), and the route a Python user takes
  without vggfeat: timm's VGG-16 ``forward_features`` on torchvision's preprocessing (Pillow
  decode, ``Resize(Q)``, ``ToTensor``, ``Normalize``), image and flip in one batch per scale,
  spatial mean, flip average, per-scale L2 and stacking (the same descriptor), with the same
  conv weights. Prints images/s of each and the ratios.
* ``memory STORE``: peak resident memory of ``Store.to_numpy`` against the matrix it returns.
"""
import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory(store):
    import vggfeat

    s = vggfeat.Store(store)
    before = vm("VmRSS:")
    t = time.perf_counter()
    ids, x = s.to_numpy(aggregate="avg")
    secs = time.perf_counter() - t
    peak = vm("VmHWM:")
    extra = peak - before
    print(json.dumps({
        "rows": x.shape[0], "dim": x.shape[1], "matrix_mib": x.nbytes / 2**20,
        "rss_before_mib": before / 2**20, "peak_mib": peak / 2**20,
        "peak_above_before_mib": extra / 2**20,
        "peak_over_matrix": extra / x.nbytes, "seconds": secs,
    }))


def timm_route(weights, paths, scales, threads):
    import timm
    import torch
    import torchvision.transforms as T
    from PIL import Image
    from safetensors.torch import load_file

    torch.set_num_threads(threads)
    model = timm.create_model("vgg16", pretrained=False, num_classes=0).eval()
    sd = {k: v for k, v in load_file(weights).items() if k.startswith("features.")}
    missing = model.load_state_dict(sd, strict=False)
    assert not [k for k in missing.missing_keys if k.startswith("features.")], missing
    norm = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    out = []
    with torch.inference_mode():
        for p in paths:
            img = Image.open(p).convert("RGB")
            per_scale = []
            for q in scales:
                x = norm(T.functional.resize(img, q))
                batch = torch.stack([x, torch.flip(x, dims=[2])])
                f = model.forward_features(batch).mean(dim=(2, 3))
                d = f.mean(dim=0)
                per_scale.append(d / d.norm().clamp_min(1e-12))
            v = torch.cat(per_scale)
            out.append((v / v.norm()).numpy())
    return np.stack(out)


def speed(a):
    import vggfeat

    root = Path(a.root)
    paths = []
    for c in a.classes.split(","):
        files = sorted(p for p in (root / c).iterdir() if p.is_file())
        paths += [str(p) for p in files[: a.limit]]
    scales = [int(q) for q in a.scales.split(",")]
    rates = {"cli": [], "describe": [], "timm": []}
    for r in range(a.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.run(
                [a.bin, "extract", str(root), "--classes", a.classes, "--limit-per-class",
                 str(a.limit), "--scales", a.scales, "-w", a.weights, "-o", f"{tmp}/s"],
                capture_output=True, text=True, check=True)
            m = re.search(r"extracted (\d+) images in ([\d.]+) s \(([\d.]+) images/s end to end",
                          p.stderr)
            assert m and int(m.group(1)) == len(paths), p.stderr
            rates["cli"].append(float(m.group(3)))
        ext = vggfeat.Extractor(a.weights, scales=scales)
        t = time.perf_counter()
        x = ext.describe(paths)
        rates["describe"].append(len(paths) / (time.perf_counter() - t))
        if not a.no_timm:
            t = time.perf_counter()
            y = timm_route(a.weights, paths, scales, a.threads)
            rates["timm"].append(len(paths) / (time.perf_counter() - t))
            assert y.shape == x.shape, (y.shape, x.shape)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} img/s" for k, v in rates.items() if v),
              file=sys.stderr)
    best = {k: max(v) for k, v in rates.items() if v}
    res = {"images": len(paths), "scales": scales, "rounds": a.rounds,
           "images_per_s_best": best,
           "describe_over_cli": best["describe"] / best["cli"]}
    if "timm" in best:
        res["describe_over_timm"] = best["describe"] / best["timm"]
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--bin", required=True)
    s.add_argument("--weights", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--classes", default="airplanes,Faces,Leopards")
    s.add_argument("--limit", type=int, default=8)
    s.add_argument("--scales", default="256,384,512")
    s.add_argument("--rounds", type=int, default=2)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--no-timm", action="store_true")
    m = sub.add_parser("memory")
    m.add_argument("store")
    a = ap.parse_args()
    if a.what == "speed":
        speed(a)
    else:
        memory(a.store)


if __name__ == "__main__":
    main()
