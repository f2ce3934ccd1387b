"""Benchmark (not a test): inference of a BWN exported to ONNX, onnxruntime against PyTorch eager.

A resnet20 BWN for Fashion-MNIST's shape (1 x 28 x 28, 10 classes; untrained: speed does not depend
on the weights) is exported as `python -m qbn.export --format onnx` would. Timed, interleaved in a
shuffled order each round, for one image and for a batch of 128: qbn's BWNModule in eval mode (what
qbn runs), the packed file's model with BatchNorm folded in PyTorch (the graph the ONNX file holds),
and onnxruntime's CPU session on that file with as many threads as torch. Prints median ms per call
and the ratios to qbn's eager call. Measure on an idle machine.

    python experiments/bench/onnx_inference.py [--rounds 30] [--calls 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import onnxruntime as ort
import torch

from qbn.export import export_module, load_bytes
from qbn.export.onnx import INPUT, fold_batchnorm, onnx_bytes
from qbn.testing.export import make_module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calls", type=int, default=5, help="calls per timing")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 128])
    a = p.parse_args()
    module, cfg = make_module("dataset=fashion_mnist", "channels_last=false")
    module.eval()
    folded = fold_batchnorm(load_bytes(export_module(module, cfg)))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(onnx_bytes(folded), options, providers=["CPUExecutionProvider"])
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {torch.get_num_threads()} threads, CPU")
    g = torch.Generator().manual_seed(0)
    for batch in a.batches:
        x = torch.rand(batch, 1, 28, 28, generator=g)
        xn = x.numpy()
        runners = {
            "qbn eager": lambda x=x: module(x),
            "packed+folded eager": lambda x=x: folded(x),
            "onnxruntime": lambda xn=xn: session.run(None, {INPUT: xn}),
        }
        times: dict[str, list[float]] = {k: [] for k in runners}
        with torch.inference_mode():
            for f in runners.values():  # warm-up
                f(), f()
            order = list(runners)
            for _ in range(a.rounds):
                random.Random(len(times["onnxruntime"])).shuffle(order)
                for k in order:
                    t = time.perf_counter()
                    for _ in range(a.calls):
                        runners[k]()
                    times[k].append((time.perf_counter() - t) / a.calls)
        med = {k: statistics.median(v) for k, v in times.items()}
        ref = med["qbn eager"]
        print(f"batch {batch}: "
              + "; ".join(f"{k} {1e3 * v:.2f} ms ({v / ref:.2f}x qbn eager)" for k, v in med.items()))


if __name__ == "__main__":
    main()
