#!/usr/bin/env python3
"""A PyTorch replica of the localisation heads trained on the trainer's frozen cache and scored
on a composite devkit's val and test sets (issue 26; results/localisation/README.md): which
change to the recipe (optimiser, standardised or square-rooted pool5) moves the test error,
before changing the trainer. Independent of the Rust code.

    python3 scripts/probe_localisation_test.py CACHE.safetensors KIT \\
        'run("adam-sqrt", 1e-4, 30, "adam", 1e-3, "sqrt")' ...

CACHE is the `frozen-<key>.safetensors` of `vggfeat train --cache-frozen 2 --cache-dir DIR`
on KIT's train set (crop 224 at S = 240, HED pool5; tensors `features` (images x 2 variants,
7, 7, 512) and `targets`). The val and test central crops go through HED's conv body in PyTorch
(scripts/probe_localisation_features.py), channels-last like the cache, once (cached beside
KIT). `run(name, lr, epochs, opt="sgd"|"adam", wd=5e-4, tf="none"|"std"|"sqrt"|"sqrtraw")`
trains a 512-512-4 SCR head (N(0, 0.01^2) weights, fc8's biases at the mean box, batches of 32,
one cached variant per image and epoch) on pool5 as it is (none), divided by its standard
deviation (std), square-rooted and divided by the root's standard deviation (sqrt) or only
square-rooted (sqrtraw, what `--fc6-input sqrt` does), and prints every 5 epochs the
ground-truth-class localisation error on val (v) and test (t).
"""
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_localisation_features import conv_body, error, features  # noqa: E402

torch.set_num_threads(2)
CACHE, KIT = sys.argv[1], sys.argv[2].rstrip("/")
HED = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "../../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors")
d = load_file(CACHE)
X = d["features"].reshape(len(d["features"]), -1)
T = d["targets"]
cf = f"{KIT}.valtest-240-224-pool5-nhwc.npz"
if not os.path.exists(cf):
    net = conv_body(HED, "pool5")
    dd = {}
    for s in ["val", "test"]:
        Xs, Ts, Gs = features(KIT, s, net, 240, 224)
        Xs = Xs.reshape(len(Xs), 512, 7, 7).transpose(0, 2, 3, 1).reshape(len(Xs), -1)
        dd[s + "X"], dd[s + "T"], dd[s + "G"] = Xs, Ts, Gs
    np.savez(cf, **dd)
dd = np.load(cf)
V = {s: torch.from_numpy(dd[s + "X"]).float() for s in ["val", "test"]}
G = {s: dd[s + "G"] for s in ["val", "test"]}
print(f"mean box: test error {error(np.tile(T.mean(0).numpy(), (len(G['test']), 1)), G['test']):.3f}")


def run(name, lr, epochs, opt="sgd", wd=5e-4, tf="none"):
    root = tf in ("sqrt", "sqrtraw")
    f = (lambda x: x.sqrt()) if root else (lambda x: x)
    sc = f(X).std().item() if tf in ("std", "sqrt") else 1.0
    Xt = f(X) / sc
    Vt = {s: f(V[s]) / sc for s in V}
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 512), torch.nn.ReLU(),
                            torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 4))
    with torch.no_grad():
        for layer in (m[0], m[2], m[4]):
            layer.weight.normal_(0, 0.01)
            layer.bias.zero_()
        m[4].bias.copy_(T.mean(0))
    o = (torch.optim.SGD(m.parameters(), lr, momentum=0.9, weight_decay=wd) if opt == "sgd"
         else torch.optim.Adam(m.parameters(), lr, weight_decay=wd))
    n, t0, out = len(X) // 2, time.time(), []
    for ep in range(epochs):
        idx = torch.randperm(n) * 2 + torch.randint(0, 2, (n,))
        for i in range(0, n, 32):
            b = idx[i:i + 32]
            loss = 0.5 * ((m(Xt[b]) - T[b]) ** 2).sum(1).mean()
            o.zero_grad()
            loss.backward()
            o.step()
        if ep % 5 == 4:
            with torch.no_grad():
                v, t = (error(m(Vt[s]).numpy(), G[s]) for s in ("val", "test"))
            out.append(f"{ep + 1}: v{v:.3f} t{t:.3f}")
    print(name, f"{time.time() - t0:.0f}s", " ".join(out), flush=True)


for spec in sys.argv[3:]:
    eval(spec)
