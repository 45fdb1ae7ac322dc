"""PyTorch reference for one training step's gradients (tests/train.rs pins vggfeat's against it).

The network is the fixture `vgg-d-tiny` (VGG-16 / configuration D with widths / 16, fc 64, 10
classes), built here from its torchvision state dict with plain torch modules: 3x3 convs with
padding 1 and ReLU, 2x2 max-pools, fc6 Linear(C*7*7, F) on the flattened pool5, fc7, fc8. The
batch is the fixture's `fixed224.input` (3 images, 224x224), labels (3, 7, 1), no dropout; the loss is the
mean softmax cross-entropy. Saved: the loss, the logits, and each layer's weight and bias
gradient under vggfeat's names (fc6's weight reshaped to the 7x7 conv it is, fc7 and fc8 to 1x1
convs).

    target/bench-venv/bin/python scripts/torch_train_reference.py \
        ../shared/fixtures/vgg-d-tiny tests/data/reference/train_step_d_tiny.safetensors
"""

import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

LABELS = [3, 7, 1]
# Configuration D: conv counts per block.
BLOCKS = [2, 2, 3, 3, 3]


def main(fixture: str, out: str) -> None:
    torch.manual_seed(0)
    sd = load_file(f"{fixture}/weights.safetensors")
    x = load_file(f"{fixture}/reference.safetensors")["fixed224.input"]
    params = {}
    idx = 0
    names = []
    for b, n in enumerate(BLOCKS):
        for j in range(n):
            name = f"conv{b + 1}_{j + 1}"
            params[name] = (sd[f"features.{idx}.weight"].clone(), sd[f"features.{idx}.bias"].clone())
            names.append(name)
            idx += 2  # conv, ReLU
        idx += 1  # pool
    for name, i in [("fc6", 0), ("fc7", 3), ("fc8", 6)]:
        params[name] = (sd[f"classifier.{i}.weight"].clone(), sd[f"classifier.{i}.bias"].clone())
        names.append(name)
    for w, b in params.values():
        w.requires_grad_(True)
        b.requires_grad_(True)
    h = x
    k = 0
    for b, n in enumerate(BLOCKS):
        for j in range(n):
            w, bias = params[names[k]]
            h = F.relu(F.conv2d(h, w, bias, padding=1))
            k += 1
        h = F.max_pool2d(h, 2)
    h = h.flatten(1)
    h = F.relu(F.linear(h, *params["fc6"]))
    h = F.relu(F.linear(h, *params["fc7"]))
    logits = F.linear(h, *params["fc8"])
    loss = F.cross_entropy(logits, torch.tensor(LABELS))
    loss.backward()
    c5 = params["conv5_3"][0].shape[0]
    out_t = {"loss": loss.detach().reshape(1), "logits": logits.detach()}
    for name in names:
        w, b = params[name]
        g = w.grad
        if name == "fc6":
            g = g.reshape(g.shape[0], c5, 7, 7)
        elif name in ("fc7", "fc8"):
            g = g.reshape(g.shape[0], g.shape[1], 1, 1)
        out_t[f"{name}.weight"] = g.contiguous()
        out_t[f"{name}.bias"] = b.grad.contiguous()
    save_file(out_t, out, metadata={"torch": torch.__version__, "labels": ",".join(map(str, LABELS))})
    print(f"loss {loss.item():.6f}; {len(out_t)} tensors to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
