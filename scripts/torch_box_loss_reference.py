"""PyTorch reference for the localisation objective (tests/train.rs pins vggfeat's against it):
one training step of the fixture `vgg-d-tiny` with its fc8 replaced by a seeded box-regression
layer, under the paper's Euclidean loss (Caffe's EuclideanLoss: sum of squared residuals over
the penalised outputs / (2 N), written with torch's own mse_loss).

Two heads: PCR (per-class regression, 2 classes: 8 outputs; only the ground-truth class's 4
outputs are penalised) and SCR (single-class: 4 outputs). The network, the batch (the fixture's
`fixed224.input`, 3 images) and the layer names are those of torch_train_reference.py; no
dropout. Saved per head (`pcr.` / `scr.` prefixes): the new fc8 weight and bias (`fc8_init.*`),
the loss, the outputs, and every layer's weight and bias gradient under vggfeat's names.

    target/bench-venv/bin/python scripts/torch_box_loss_reference.py \
        ../shared/fixtures/vgg-d-tiny tests/data/reference/box_step_d_tiny.safetensors
"""

import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

BOXES = [[0.5, 0.4, 0.8, 0.6], [0.2, 0.7, 0.3, 0.5], [0.6, 0.5, 1.0, 0.9]]
CLASSES = [1, 0, 1]
BLOCKS = [2, 2, 3, 3, 3]


def step(sd, x, head, seed):
    g = torch.Generator().manual_seed(seed)
    fc_width = sd["classifier.6.weight"].shape[1]
    outputs = 8 if head == "pcr" else 4
    fc8_w = torch.randn(outputs, fc_width, generator=g) * 0.01
    fc8_b = torch.zeros(outputs)
    params, names, idx = {}, [], 0
    for b, n in enumerate(BLOCKS):
        for j in range(n):
            name = f"conv{b + 1}_{j + 1}"
            params[name] = (sd[f"features.{idx}.weight"].clone(), sd[f"features.{idx}.bias"].clone())
            names.append(name)
            idx += 2
        idx += 1
    params["fc6"] = (sd["classifier.0.weight"].clone(), sd["classifier.0.bias"].clone())
    params["fc7"] = (sd["classifier.3.weight"].clone(), sd["classifier.3.bias"].clone())
    params["fc8"] = (fc8_w.clone(), fc8_b.clone())
    names += ["fc6", "fc7", "fc8"]
    for w, b in params.values():
        w.requires_grad_(True)
        b.requires_grad_(True)
    h, k = x, 0
    for b, n in enumerate(BLOCKS):
        for j in range(n):
            h = F.relu(F.conv2d(h, *params[names[k]], padding=1))
            k += 1
        h = F.max_pool2d(h, 2)
    h = h.flatten(1)
    h = F.relu(F.linear(h, *params["fc6"]))
    h = F.relu(F.linear(h, *params["fc7"]))
    out = F.linear(h, *params["fc8"])
    n = out.shape[0]
    if head == "pcr":
        pred = torch.stack([out[i, 4 * c: 4 * c + 4] for i, c in enumerate(CLASSES)])
    else:
        pred = out
    loss = F.mse_loss(pred, torch.tensor(BOXES), reduction="sum") / (2 * n)
    loss.backward()
    c5 = params["conv5_3"][0].shape[0]
    t = {
        f"{head}.fc8_init.weight": fc8_w.reshape(outputs, fc_width, 1, 1).contiguous(),
        f"{head}.fc8_init.bias": fc8_b,
        f"{head}.loss": loss.detach().reshape(1),
        f"{head}.outputs": out.detach(),
    }
    for name in names:
        w, b = params[name]
        gw = w.grad
        if name == "fc6":
            gw = gw.reshape(gw.shape[0], c5, 7, 7)
        elif name in ("fc7", "fc8"):
            gw = gw.reshape(gw.shape[0], gw.shape[1], 1, 1)
        t[f"{head}.{name}.weight"] = gw.contiguous()
        t[f"{head}.{name}.bias"] = b.grad.contiguous()
    return t, loss.item()


def main(fixture: str, out: str) -> None:
    sd = load_file(f"{fixture}/weights.safetensors")
    x = load_file(f"{fixture}/reference.safetensors")["fixed224.input"]
    tensors = {}
    for head, seed in [("pcr", 1), ("scr", 2)]:
        t, loss = step(sd, x, head, seed)
        tensors.update(t)
        print(f"{head}: loss {loss:.6f}")
    save_file(tensors, out, metadata={"torch": torch.__version__, "classes": ",".join(map(str, CLASSES))})
    print(f"{len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
