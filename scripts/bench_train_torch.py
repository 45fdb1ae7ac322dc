"""The PyTorch side of scripts/bench_train.sh: the training step of examples/bench_train.rs
(same net, crop, batch, loss, dropout and SGD) timed in PyTorch on the CPU.

    python scripts/bench_train_torch.py CONFIG DIV CROP BATCH [--channels-last]

Configuration A, B, D or E with ImageNet widths divided by DIV; fc6 a Linear over the flattened
pool5 (crop / 32 squared positions) to 4096 / DIV, fc7 the same width, fc8 20 classes; dropout
0.5 after fc6 and fc7; mean softmax cross-entropy; SGD with momentum 0.9 and weight decay 5e-4.
Prints each step and `... N ms per step` (the median of steps 1-10, as the Rust example), and the
process's peak resident memory.
"""

import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn

# Timed steps after the first (a warm-up); the median is reported, as examples/bench_train.rs does.
STEPS = 10

CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def net(config: str, div: int, crop: int, classes: int = 20) -> nn.Module:
    layers, c = [], 3
    for v in CFGS[config]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            w = max(v // div, 1)
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True)]
            c = w
    fc, k = 4096 // div, crop // 32
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(c * k * k, fc), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(fc, classes),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("div", type=int)
    ap.add_argument("crop", type=int)
    ap.add_argument("batch", type=int)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    m = net(a.config, a.div, a.crop)
    x = torch.randn(a.batch, 3, a.crop, a.crop)
    if a.channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(a.batch) % 20
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(STEPS + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t
        if i > 0:
            times.append(dt)
        print(f"step {i}: {dt * 1e3:.1f} ms")
    mean = statistics.median(times)
    layout = "channels-last" if a.channels_last else "NCHW"
    print(f"{a.config} /{a.div} crop {a.crop} batch {a.batch} (torch {torch.__version__}, {layout}, "
          f"{torch.get_num_threads()} threads): {mean * 1e3:.1f} ms per step, {a.batch / mean:.1f} images/s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
