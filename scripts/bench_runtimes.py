#!/usr/bin/env python3
"""ONNX Runtime and OpenVINO references for scripts/bench_speed.sh: the same dense VGG-16 as
scripts/bench_torch.py (torchvision, random weights, fc6 as a 7x7 conv, fc7/fc8 as 1x1 convs),
exported once with torch.onnx.export (dynamic batch, height and width), then run on the
workloads of examples/bench_net.rs: 224x224 at batch 8, dense Q = 384 and 512 at batch 1.

  --runtime onnxruntime        ORT's CPU execution provider, all graph optimisations
  --runtime openvino-f32       OpenVINO CPU plugin with INFERENCE_PRECISION_HINT=f32
  --runtime openvino           OpenVINO CPU plugin with its defaults (bf16 on a CPU with
                               AVX512-BF16 or AMX; it prints the precision it chose)
  --runtime openvino-int8      the INT8 model NNCF's post-training quantization makes of the
                               same net (`nncf.quantize` with its defaults, 20 calibration
                               inputs drawn like the benchmark's), made once, run with
                               OpenVINO's defaults

OpenVINO compiles a static-shape model per workload (its fastest mode; compile time is not
counted). Prints one JSON line per workload; with --peak-q Q, one forward of an image and its
flip at Q and the peak RSS (MiB) instead.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import flops  # noqa: E402


def export_onnx(path):
    """The dense VGG-16 of bench_torch.py as ONNX (seed 0), written once."""
    if os.path.exists(path):
        return
    import torch
    import torchvision

    torch.manual_seed(0)
    vgg = torchvision.models.vgg16().eval()
    # fc6/fc7/fc8 as convolutions holding the Linear layers' weights (bench_torch.Dense's maps).
    head = []
    for lin, k in ((vgg.classifier[0], 7), (vgg.classifier[3], 1), (vgg.classifier[6], 1)):
        conv = torch.nn.Conv2d(lin.in_features // (k * k), lin.out_features, k)
        conv.weight.data = lin.weight.data.view(conv.weight.shape).clone()
        conv.bias.data = lin.bias.data.clone()
        head += [conv, torch.nn.ReLU()]
    net = torch.nn.Sequential(vgg.features, *head[:-1]).eval()
    x = torch.randn(1, 3, 224, 224)
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(
            net, (x,), tmp, input_names=["x"], output_names=["scores"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 2: "oh", 3: "ow"}},
            opset_version=17, dynamo=False, external_data=False,
        )
    os.replace(tmp, path)


def quantize_int8(path, out):
    """NNCF's INT8 model of the ONNX net at `path`, written once to `out` (.xml)."""
    if os.path.exists(out):
        return
    import nncf
    import openvino as ov

    m = ov.Core().read_model(path)
    m.reshape({"x": [-1, 3, -1, -1]})
    rng = np.random.default_rng(1)
    calib = [rng.standard_normal((1, 3, 224, 224), dtype=np.float32) for _ in range(20)]
    q = nncf.quantize(m, nncf.Dataset(calib), subset_size=len(calib))
    ov.save_model(q, out + ".tmp.xml")
    os.replace(out + ".tmp.bin", out[: -len(".xml")] + ".bin")
    os.replace(out + ".tmp.xml", out)


class Ort:
    def __init__(self, path, threads):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.name = "onnxruntime"

    def prepare(self, shape):
        return lambda x: self.s.run(None, {"x": x})[0]


class Ov:
    def __init__(self, path, threads, f32, name):
        import openvino as ov

        self.core = ov.Core()
        self.model_path = path
        self.cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if f32:
            self.cfg["INFERENCE_PRECISION_HINT"] = "f32"
        self.name = name
        self.precision = None

    def prepare(self, shape):
        m = self.core.read_model(self.model_path)
        m.reshape({"x": list(shape)})
        c = self.core.compile_model(m, "CPU", self.cfg)
        self.precision = str(c.get_property("INFERENCE_PRECISION_HINT"))
        req = c.create_infer_request()

        def run(x):
            req.infer({0: x})
            return req.get_output_tensor(0).data

        return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True,
                    choices=["onnxruntime", "openvino", "openvino-f32", "openvino-int8"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", default="target/bench-vgg16-dense.onnx")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--peak-q", type=int)
    a = ap.parse_args()
    export_onnx(a.onnx)
    if a.runtime == "onnxruntime":
        rt = Ort(a.onnx, a.threads)
    elif a.runtime == "openvino-int8":
        xml = a.onnx[: -len(".onnx")] + "-int8.xml"
        quantize_int8(a.onnx, xml)
        rt = Ov(xml, a.threads, False, a.runtime)
    else:
        rt = Ov(a.onnx, a.threads, a.runtime == "openvino-f32", a.runtime)
    rng = np.random.default_rng(0)
    if a.peak_q:
        q = a.peak_q
        run = rt.prepare((1, 3, q, q))
        x = rng.standard_normal((1, 3, q, q), dtype=np.float32)
        run(x)
        run(np.ascontiguousarray(x[..., ::-1]))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"impl": rt.name, "workload": f"peak{q}", "peak_rss_mib": round(rss, 1)}))
        return
    workloads = [("classic224", 2, 224)] if a.quick else [("classic224", 8, 224), ("dense384", 1, 384), ("dense512", 1, 512)]
    for name, batch, q in workloads:
        run = rt.prepare((batch, 3, q, q))
        x = rng.standard_normal((batch, 3, q, q), dtype=np.float32)
        run(x)  # warm-up
        reps = 1 if a.quick else max(2, min(4, 16 // batch))
        t = time.perf_counter()
        for _ in range(reps):
            run(x)
        secs = (time.perf_counter() - t) / reps
        row = {"impl": rt.name, "workload": name, "batch": batch, "q": q,
               "images_per_s": round(batch / secs, 3), "gflops": round(flops(q, q) * batch / secs / 1e9, 1)}
        if getattr(rt, "precision", None):
            row["precision"] = rt.precision
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
