#!/usr/bin/env python3
"""The vgg-d-tiny fixture as a Keras 2 applications weight file, written with h5py (libhdf5).

Writes tests/data/reference/tiny_keras2.h5 in the layout of Keras applications'
`vgg16_weights_tf_dim_ordering_tf_kernels.h5` (`model.save_weights` in Keras 2). The root has
attributes `layer_names`, `backend` and `keras_version`. Each layer is a group with a
`weight_names` attribute, holding `<layer>/kernel:0` and `<layer>/bias:0`.

* Conv kernels are HWIO: torchvision's OIHW transposed (2, 3, 1, 0).
* `fc1`'s kernel is (7*7*C, F), its rows in Keras' channels-last flatten order (h, w, c).
* `fc2` and `predictions` are torchvision's Linear weights transposed.

vggfeat must load this file and give exactly the weights of the torchvision safetensors.
Run from the repository root with numpy, safetensors and h5py installed:
    python3 scripts/keras_reference.py ../shared
"""
import sys

import h5py
import numpy as np
from safetensors.numpy import load_file

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
sd = load_file(f"{SHARED}/fixtures/vgg-d-tiny/weights.safetensors")
convs = sorted(int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight"))
blocks = [2, 2, 3, 3, 3]  # configuration D
layers, weights = ["input_1"], {}
it = iter(convs)
for b, n in enumerate(blocks, 1):
    for c in range(1, n + 1):
        i = next(it)
        name = f"block{b}_conv{c}"
        layers.append(name)
        weights[name] = [sd[f"features.{i}.weight"].transpose(2, 3, 1, 0), sd[f"features.{i}.bias"]]
    layers.append(f"block{b}_pool")
layers.append("flatten")
w6 = sd["classifier.0.weight"]  # (F, C*7*7) in (c, h, w) order
f, c = w6.shape[0], sd[f"features.{convs[-1]}.weight"].shape[0]
fc1 = w6.reshape(f, c, 7, 7).transpose(2, 3, 1, 0).reshape(7 * 7 * c, f)  # rows (h, w, c)
weights["fc1"] = [fc1, sd["classifier.0.bias"]]
weights["fc2"] = [sd["classifier.3.weight"].T, sd["classifier.3.bias"]]
weights["predictions"] = [sd["classifier.6.weight"].T, sd["classifier.6.bias"]]
layers += ["fc1", "fc2", "predictions"]
with h5py.File("tests/data/reference/tiny_keras2.h5", "w") as h:
    h.attrs["layer_names"] = np.array([n.encode() for n in layers])
    h.attrs["backend"] = b"tensorflow"
    h.attrs["keras_version"] = b"2.2.4"
    for name in layers:
        g = h.create_group(name)
        names = [f"{name}/kernel:0", f"{name}/bias:0"] if name in weights else []
        g.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
        for n, v in zip(names, weights.get(name, [])):
            g.create_dataset(n, data=np.ascontiguousarray(v, dtype=np.float32))
print("wrote tests/data/reference/tiny_keras2.h5")
