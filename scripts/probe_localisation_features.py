#!/usr/bin/env python3
"""How much box information do frozen conv features carry? (issue 26, results/localisation)

An upper-bound probe beside the real benchmark (scripts/bench_localisation.sh), independent of
the Rust trainer: PyTorch computes the frozen HED VGG-16 conv features of a composite devkit's
central crops once (no augmentation), then fits the box (centre x, centre y, width, height in
units of the crop) with (1) kernel ridge regression, lambda chosen on `val`, and (2) a two-layer
MLP (Adam, seeded), and prints the ground-truth-class localisation error (IoU > 0.5 in original
pixels, as `vggfeat localise --protocol center --gt-class` scores it) on train / val / test.

    python3 scripts/probe_localisation_features.py KIT [--scale 240 --crop 224] [--cut pool5]
        [--hed ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors] [--epochs 150]

Needs numpy, pillow, safetensors and torch (target/bench-venv has them). Features are cached
beside KIT (KIT.features-S-C-CUT.npz).
"""
import argparse
import os
import re

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from safetensors.torch import load_file

MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
CUTS = {"pool3": 17, "pool4": 24, "pool5": 31}


def conv_body(path, cut):
    layers, c = [], 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    net = nn.Sequential(*layers)
    net.load_state_dict({k[len("features."):]: v for k, v in load_file(path).items()})
    return net.eval()[: CUTS[cut]]


def box_of(xml_path):
    t = open(xml_path).read()
    g = lambda k: float(re.search(f"<{k}>(\\d+)</{k}>", t).group(1))
    # VOC's 1-based inclusive box as continuous pixels [xmin - 1, xmax).
    return np.array([g("xmin") - 1, g("ymin") - 1, g("xmax"), g("ymax")])


def features(kit, split, net, S, C):
    X, T, G = [], [], []
    for i in open(f"{kit}/ImageSets/Main/{split}.txt").read().split():
        im = Image.open(f"{kit}/JPEGImages/{i}.jpg").convert("RGB")
        w, h = im.size
        f = S / min(w, h)
        nw, nh = round(w * f), round(h * f)
        im = im.resize((nw, nh), Image.BILINEAR)
        x0, y0 = (nw - C) // 2, (nh - C) // 2
        a = np.asarray(im, np.float32)[y0 : y0 + C, x0 : x0 + C, ::-1] - MEAN_BGR
        with torch.no_grad():
            X.append(net(torch.from_numpy(a.copy()).permute(2, 0, 1)[None]).flatten().numpy())
        b = box_of(f"{kit}/Annotations/{i}.xml")
        c = b * f - np.array([x0, y0, x0, y0])
        T.append([(c[0] + c[2]) / 2 / C, (c[1] + c[3]) / 2 / C, (c[2] - c[0]) / C, (c[3] - c[1]) / C])
        G.append([*b, f, x0, y0, C])
    return np.array(X), np.array(T), np.array(G)


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    i = iw * ih
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)


def error(P, G):
    hits = 0
    for p, g in zip(P, G):
        b, f, x0, y0, C = g[:4], g[4], g[5], g[6], g[7]
        cx, cy, w, h = p * C
        q = np.array([cx - w / 2 + x0, cy - h / 2 + y0, cx + w / 2 + x0, cy + h / 2 + y0]) / f
        hits += iou(q, b) > 0.5
    return 1 - hits / len(G)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kit")
    ap.add_argument("--scale", type=int, default=240)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--cut", choices=sorted(CUTS), default="pool5")
    ap.add_argument("--hed", default=os.path.join(os.path.dirname(__file__),
                    "../../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors"))
    ap.add_argument("--epochs", type=int, default=150)
    a = ap.parse_args()
    torch.manual_seed(0)
    cache = f"{a.kit.rstrip('/')}.features-{a.scale}-{a.crop}-{a.cut}.npz"
    if not os.path.exists(cache):
        net = conv_body(a.hed, a.cut)
        d = {}
        for s in ["train", "val", "test"]:
            d[s + "X"], d[s + "T"], d[s + "G"] = features(a.kit, s, net, a.scale, a.crop)
        np.savez(cache, **d)
    d = np.load(cache)
    X = {s: np.sqrt(d[s + "X"]) for s in ["train", "val", "test"]}
    T, G = d["trainT"], {s: d[s + "G"] for s in ["train", "val", "test"]}
    print(f"{a.kit}: train {len(T)}, S={a.scale}, crop {a.crop}, {a.cut}, dim {X['train'].shape[1]}")
    errs = lambda pred: " ".join(f"{error(pred(X[s]), G[s]):.3f}" for s in ["train", "val", "test"])
    print(f"  mean box                   train/val/test error {errs(lambda x: np.tile(T.mean(0), (len(x), 1)))}")
    # (1) Kernel ridge regression on sqrt features, lambda relative to the mean kernel diagonal.
    m = X["train"].mean(0)
    A0 = X["train"] - m
    K = A0 @ A0.T
    best = None
    for lam in [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]:
        alpha = np.linalg.solve(K + lam * np.trace(K) / len(K) * np.eye(len(K)), T - T.mean(0))
        pred = lambda x, alpha=alpha: (x - m) @ A0.T @ alpha + T.mean(0)
        e = error(pred(X["val"]), G["val"])
        if best is None or e < best[0]:
            best = (e, lam, pred)
    print(f"  ridge (lambda {best[1]:g})         train/val/test error {errs(best[2])}")
    # (2) An MLP like the trained heads (two hidden layers of 512), fc8 biases at the mean box.
    sc = float(X["train"].std())
    t = {s: torch.from_numpy(X[s] / sc).float() for s in X}
    Tt = torch.from_numpy(T).float()
    mlp = nn.Sequential(nn.Linear(t["train"].shape[1], 512), nn.ReLU(), nn.Linear(512, 512),
                        nn.ReLU(), nn.Linear(512, 4))
    with torch.no_grad():
        mlp[-1].bias.copy_(Tt.mean(0))
    opt = torch.optim.Adam(mlp.parameters(), 1e-4, weight_decay=1e-3)
    best = (2.0, None)
    for ep in range(a.epochs):
        mlp.train()
        perm = torch.randperm(len(Tt))
        for i in range(0, len(Tt), 32):
            b = perm[i : i + 32]
            loss = ((mlp(t["train"][b]) - Tt[b]) ** 2).sum(1).mean() / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep % 10 == 9:
            mlp.eval()
            with torch.no_grad():
                e = [error(mlp(t[s]).numpy(), G[s]) for s in ["train", "val", "test"]]
            if e[1] < best[0]:
                best = (e[1], (ep + 1, e))
    ep, e = best[1]
    print(f"  MLP 512-512 (epoch {ep:3}, best val) train/val/test error {' '.join(f'{x:.3f}' for x in e)}")


if __name__ == "__main__":
    main()
