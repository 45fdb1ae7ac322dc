#!/usr/bin/env python3
"""Reference numbers from PyTorch for vggfeat tests that ../shared/fixtures does not cover.

Writes into tests/data/reference/:

  bn_tiny.safetensors            a narrow configuration-A network WITH batch norm (torchvision's
                                 vgg11_bn layout: features.N = conv, bn, relu, ..., pool;
                                 classifier.{0,3,6}), non-trivial BN statistics
  bn_tiny_reference.safetensors  `input` (1,3,96,128); `fc7`, `logits` of the classic path in
                                 eval mode; `folded.features.N.{weight,bias}`: each conv with its
                                 BN folded by torch.nn.utils.fusion.fuse_conv_bn_eval
  classify_tiny.json             the paper's classification posteriors of the vgg-d-tiny fixture
                                 on its three PNGs: dense at Q = 256 (the softmax of the fc8
                                 score map's mean, averaged with the flipped image's), and
                                 multi-crop (224 x 224 crops on a 5 x 5 grid at Q = 256 and a
                                 3 x 3 grid at Q = 240, each with its flip, posteriors averaged)

Run from the repository root, with torch, torchvision, safetensors and Pillow installed:
    python3 scripts/torch_references.py ../shared
Deterministic (seed 0).
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

OUT = "tests/data/reference"
SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
torch.manual_seed(0)
os.makedirs(OUT, exist_ok=True)


def bn_reference():
    cfg = [4, "M", 8, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"]  # A, widths / 16
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(True)]
            c = v
    features = nn.Sequential(*layers)
    classifier = nn.Sequential(
        nn.Linear(c * 49, 16), nn.ReLU(True), nn.Dropout(),
        nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
        nn.Linear(16, 5),
    )
    for m in features:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            nn.init.normal_(m.bias, 0, 0.1)
        if isinstance(m, nn.BatchNorm2d):  # statistics far from the identity
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.3, 3.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.3)
            m.num_batches_tracked.fill_(100)
    net = nn.Module()
    net.features, net.avgpool, net.classifier = features, nn.AdaptiveAvgPool2d((7, 7)), classifier
    net.eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        p = torch.flatten(net.avgpool(features(x)), 1)
        fc7 = F.relu(classifier[3](F.relu(classifier[0](p))))
        logits = classifier[6](fc7)
        folded = {}
        for i, m in enumerate(features):
            if isinstance(m, nn.Conv2d):
                f = torch.nn.utils.fusion.fuse_conv_bn_eval(m, features[i + 1])
                folded[f"folded.features.{i}.weight"] = f.weight.contiguous()
                folded[f"folded.features.{i}.bias"] = f.bias.contiguous()
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(sd, f"{OUT}/bn_tiny.safetensors")
    save_file({"input": x, "fc7": fc7, "logits": logits, **folded},
              f"{OUT}/bn_tiny_reference.safetensors")


def pillow_input(path, q, flip):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = min(w, h)
    size = (q, round(h * q / s)) if w <= h else (round(w * q / s), q)
    img = img.resize(size, Image.BILINEAR)
    x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    x = x.view(img.size[1], img.size[0], 3).permute(2, 0, 1).float() / 255.0
    x = (x - MEAN) / STD
    return torch.flip(x, [2]) if flip else x


def tiny_net():
    """The vgg-d-tiny fixture as a function from a batch (N,3,H,W) to its fc8 score maps."""
    d = f"{SHARED}/fixtures/vgg-d-tiny"
    sd = load_file(f"{d}/weights.safetensors")
    # Rebuild the body walk from the module indices: a conv at N is followed by its ReLU at N+1,
    # anything else is a 2x2 max-pool.
    convs = sorted(int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight"))
    last = convs[-1] + 2  # the final pool

    def scores(x):
        with torch.no_grad():
            n = 0
            while n <= last:
                if n in convs:
                    x = F.relu(F.conv2d(x, sd[f"features.{n}.weight"], sd[f"features.{n}.bias"], padding=1))
                    n += 2
                else:
                    x = F.max_pool2d(x, 2)
                    n += 1
            w6 = sd["classifier.0.weight"]
            c = x.shape[1]
            x = F.relu(F.conv2d(x, w6.view(w6.shape[0], c, 7, 7), sd["classifier.0.bias"]))
            w7 = sd["classifier.3.weight"]
            x = F.relu(F.conv2d(x, w7.view(*w7.shape, 1, 1), sd["classifier.3.bias"]))
            w8 = sd["classifier.6.weight"]
            return F.conv2d(x, w8.view(*w8.shape, 1, 1), sd["classifier.6.bias"])

    return d, scores


def crop_offsets(side, crop, grid):
    """The crop grid of vggfeat's classify: round(i * (side - crop) / (grid - 1)), halves away
    from zero (Rust's f64::round, not Python's banker's round); a 1x1 grid is the centre."""
    room = max(side - crop, 0)
    if grid <= 1:
        return [room // 2]
    return [math.floor(i * room / (grid - 1) + 0.5) for i in range(grid)]


def classify_reference():
    d, scores = tiny_net()
    dense = {}
    for i in range(3):
        posts = []
        for flip in (False, True):
            x = pillow_input(f"{d}/images/{i}.png", 256, flip).unsqueeze(0)
            posts.append(torch.softmax(scores(x).mean(dim=(2, 3))[0], dim=0))
        # The paper (Section 3.2): the soft-max posteriors of the image and its flip are averaged.
        dense[f"{i}.png"] = [float(v) for v in (posts[0] + posts[1]) / 2]
    crops = []
    for q, grid in ((256, 5), (240, 3)):
        out = {}
        for i in range(3):
            x = pillow_input(f"{d}/images/{i}.png", q, False)
            _, h, w = x.shape
            batch = []
            for y in crop_offsets(h, 224, grid):
                for xo in crop_offsets(w, 224, grid):
                    c = x[:, y:y + 224, xo:xo + 224]
                    batch += [c, torch.flip(c, [2])]
            p = torch.softmax(scores(torch.stack(batch)).mean(dim=(2, 3)), dim=1)
            out[f"{i}.png"] = [float(v) for v in p.mean(dim=0)]
        crops.append({"scale": q, "grid": grid, "posteriors": out})
    with open(f"{OUT}/classify_tiny.json", "w") as f:
        json.dump({"scale": 256, "weights": "vgg-d-tiny/weights.safetensors", "posteriors": dense,
                   "crops": crops}, f, indent=1)


bn_reference()
classify_reference()
print("wrote", sorted(os.listdir(OUT)))
