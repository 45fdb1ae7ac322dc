#!/usr/bin/env python3
"""The PyTorch side of scripts/gpu_check.sh: what a user would write to get pool5 descriptors of
a conv-only VGG-16 on a GPU with PyTorch, as one loop over the images: decode (Pillow), isotropic
rescale to Q (Pillow's bilinear, as vggfeat does), the Caffe convention (BGR, 0..255, minus the
mean pixel; the HED weights' convention), the conv body on the image and its flip (a batch of
2), the spatial mean of pool5 averaged over the flip, copied back to the host.

  python scripts/gpu_torch_extract.py IMAGES WEIGHTS.safetensors --scale 384
      [--device cuda|cpu] [--precision f32|bf16] [--out desc.npy]

f32 runs with TF32 turned off (cuDNN and cuBLAS), so that it is the same arithmetic as
vggfeat's f32; bf16 converts the body and its inputs to bfloat16. Prints the wall time and the
images per second, end to end and in the network (synchronised).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ov_extract import MEAN_BGR, conv_body, rescale  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("weights")
    ap.add_argument("--scale", type=int, default=384)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import torch
    from PIL import Image

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    body = conv_body(a.weights).to(a.device, dtype)
    paths = sorted(os.path.join(a.images, f) for f in os.listdir(a.images))
    rows, net = [], 0.0
    with torch.inference_mode():
        for p in paths:
            img = Image.open(p).convert("RGB")
            r = rescale(img, a.scale)
            x = np.asarray(r, np.float32).transpose(2, 0, 1)[::-1] - MEAN_BGR
            batch = np.ascontiguousarray(np.stack([x, x[:, :, ::-1]]))
            if a.device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            y = body(torch.from_numpy(batch).to(a.device, dtype)).float().mean(dim=(2, 3))
            d = (0.5 * (y[0] + y[1])).cpu().numpy()
            net += time.perf_counter() - t
            rows.append(d)
    wall = time.perf_counter() - t0
    print(f"pytorch {a.device} {a.precision}: {len(paths)} images in {wall:.1f} s "
          f"({len(paths) / wall:.2f} images/s end to end, {len(paths) / net:.2f} images/s in the "
          f"network)", file=sys.stderr)
    if a.out:
        np.save(a.out, np.stack(rows))


if __name__ == "__main__":
    main()
