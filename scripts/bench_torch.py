#!/usr/bin/env python3
"""PyTorch reference for scripts/bench_speed.sh: the same workloads as examples/bench_net.rs.

VGG-16 (torchvision, random weights) in inference mode: the classic 224x224 path at batch 8,
and dense evaluation (fc6 as a 7x7 conv, fc7/fc8 as 1x1 convs) on Q x Q inputs at batch 1.
Prints one JSON line per workload; with --peak-q Q, instead runs one dense forward at Q and
prints peak RSS (MiB). Threads: torch.set_num_threads(--threads).
"""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F
import torchvision


def flops(h, w):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    c, f = 3, 0.0
    for v in cfg:
        if v == "M":
            h, w = h // 2, w // 2
        else:
            f += 2.0 * 9 * c * v * h * w
            c = v
    oh, ow = h - 6, w - 6
    return f + 2.0 * oh * ow * (49 * c * 4096 + 4096 * 4096 + 4096 * 1000)


class Dense(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.features = net.features
        c6, c7, c8 = net.classifier[0], net.classifier[3], net.classifier[6]
        self.w6 = c6.weight.view(4096, 512, 7, 7)
        self.b6 = c6.bias
        self.w7 = c7.weight[:, :, None, None]
        self.b7 = c7.bias
        self.w8 = c8.weight[:, :, None, None]
        self.b8 = c8.bias

    def forward(self, x):
        f = self.features(x)
        h = F.relu(F.conv2d(f, self.w6, self.b6))
        h = F.relu(F.conv2d(h, self.w7, self.b7))
        return F.conv2d(h, self.w8, self.b8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--peak-q", type=int)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = Dense(torchvision.models.vgg16().eval())
    if a.peak_q:
        with torch.inference_mode():
            x = torch.randn(1, 3, a.peak_q, a.peak_q)
            net(x)
            net(torch.flip(x, dims=[3]))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"impl": "pytorch", "workload": f"peak{a.peak_q}", "peak_rss_mib": round(rss, 1)}))
        return
    workloads = [("classic224", 2, 224)] if a.quick else [("classic224", 8, 224), ("dense384", 1, 384), ("dense512", 1, 512)]
    with torch.inference_mode():
        for name, batch, q in workloads:
            x = torch.randn(batch, 3, q, q)
            net(x)  # warm-up
            reps = 1 if a.quick else max(2, min(4, 16 // batch))
            t = time.perf_counter()
            for _ in range(reps):
                net(x)
            secs = (time.perf_counter() - t) / reps
            print(json.dumps({"impl": "pytorch", "workload": name, "batch": batch, "q": q,
                              "images_per_s": round(batch / secs, 3),
                              "gflops": round(flops(q, q) * batch / secs / 1e9, 1)}))


if __name__ == "__main__":
    main()
