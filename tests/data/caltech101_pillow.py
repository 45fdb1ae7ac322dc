"""Pillow's decoding of a deterministic subset of Caltech-101 (the first 2 files per class in
byte-wise sorted order, plus the extension-less BACKGROUND_Google/tmp), summarised per image as
size, Pillow mode and the mean of each RGB channel after `convert("RGB")`. tests/image_io.rs
checks vggfeat's decoder against it.

    target/pv/bin/python tests/data/caltech101_pillow.py ../shared/datasets/caltech101/101_ObjectCategories \
        > tests/data/caltech101_pillow.csv
(made with Pillow 13.0.0, libjpeg-turbo 3, numpy)
"""

import os
import sys

import numpy as np
from PIL import Image

root = sys.argv[1]
print("id,width,height,mode,mean_r,mean_g,mean_b")
for cls in sorted(os.listdir(root), key=lambda s: s.encode()):
    names = sorted(os.listdir(os.path.join(root, cls)), key=lambda s: s.encode())
    pick = names[:2] + (["tmp"] if cls == "BACKGROUND_Google" else [])
    for name in pick:
        im = Image.open(os.path.join(root, cls, name))
        mode = im.mode
        a = np.asarray(im.convert("RGB"), dtype=np.float64)
        m = a.reshape(-1, 3).mean(axis=0)
        print(f"{cls}/{name},{im.width},{im.height},{mode},{m[0]:.4f},{m[1]:.4f},{m[2]:.4f}")
