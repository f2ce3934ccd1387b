"""Benchmark (not a test): packed-file sizes and export/load times (issue 6).

For resnet20 and resnet18 (Fashion-MNIST shapes: 28 px, 1 channel, 10 classes): the BWN
packed, QBN n = 5 packed, and the entropy format, against the fp32 checkpoint of the same model;
bits per binarized weight (targets: <= 1.005 BWN, <= 5/9 + 0.005 QBN n = 5, entropy < BWN
wherever a layer's kernel entropy < 8.9 bits); export and load time over one training step
(batch 128, Adam), all measured in this one run.

A randomly initialised BWN has ~9 bits/kernel, so the entropy format is also measured on
  - "skewed": the same model with kernels drawn from a skewed distribution (about 7.8 bits,
    the entropy measured on a trained resnet20 (docs/study.md)), a labelled stand-in, and
  - trained checkpoints given with --ckpt RUN_DIR (repeatable).

    .venv/bin/python experiments/bench/export_sizes.py [--ckpt RUN_DIR ...] [--models resnet20,resnet18]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import torch

from qbn.binary import binary_layers
from qbn.checkpoint import model_from_checkpoint
from qbn.export import export_module, load_bytes, report_bytes
from qbn.kernels import entropy as kernel_entropy
from qbn.kernels import histogram, is_kernel_tensor, kernel_ids
from qbn.kernels.quantize import quantizable_layers, quantize
from qbn.module import build_module
from qbn.testing.export import skew_kernels
from qbn.testing.runs import ROOT, compose_cfg


def fp32_checkpoint_bytes(module) -> int:
    """Size of torch.save({'state_dict': ...}) of the model: the latent fp32 weights a checkpoint holds
    (a Lightning last.ckpt adds optimizer state on top)."""
    buf = io.BytesIO()
    torch.save({"state_dict": module.state_dict()}, buf)
    return buf.tell()


def train_step_seconds(module, cfg, repeats: int = 3) -> float:
    """Median seconds of one optimizer step (forward, backward, Adam) at batch 128."""
    ds = cfg.dataset
    net = module.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(128, ds.in_channels, ds.image_size, ds.image_size)
    y = torch.randint(0, ds.num_classes, (128,))
    times = []
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for _ in range(repeats):
        t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    net.load_state_dict(state)
    net.eval()
    return sorted(times)[len(times) // 2]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def layer_entropies(module) -> dict[str, float]:
    return {n: kernel_entropy(histogram(kernel_ids(m.signs()))) for n, m in binary_layers(module.net).items()
            if is_kernel_tensor(m.weight)}


def entropy_check(module, buf_entropy: bytes, buf_packed: bytes) -> str:
    """Per layer: bytes of the entropy file's weights vs packed, for layers with H < 8.9."""
    rows_e = {r["layer"]: r for r in report_bytes(buf_entropy)["rows"]}
    rows_p = {r["layer"]: r for r in report_bytes(buf_packed)["rows"]}
    low = {n: h for n, h in layer_entropies(module).items() if h < 8.9}
    smaller = [n for n in low if rows_e[n]["bits_per_weight"] < rows_p[n]["bits_per_weight"]]
    kernels = {r["layer"]: r["shape"][0] * r["shape"][1] for r in rows_p.values() if r["layer"] in low}
    missed = ", ".join(f"{n} ({kernels[n]} kernels, H {low[n]:.2f})" for n in low if n not in smaller)
    return (f"{len(smaller)}/{len(low)} layers with plug-in H < 8.9 bits stored smaller"
            + (f"; not smaller: {missed[:400]}" if missed else ""))


def report(label: str, module, cfg, fmt: str, ckpt_bytes: int, step_s: float) -> tuple[bytes, str]:
    buf, t_export = timed(lambda: export_module(module, cfg, fmt=fmt))
    _, t_load = timed(lambda: load_bytes(buf))
    r = report_bytes(buf)
    t = r["totals"]
    k3 = [row for row in r["rows"] if row["layer"] in binary_layers(module.net) and row["shape"][2:] == [3, 3]]
    bits3 = sum(row["bits_per_weight"] * 9 * row["shape"][0] * row["shape"][1] for row in k3)
    n3 = sum(9 * row["shape"][0] * row["shape"][1] for row in k3)
    line = (f"| {label} | {fmt} | {t['file_bytes']:,} | {ckpt_bytes:,} | {ckpt_bytes / t['file_bytes']:.1f}x | "
            f"{t['bits_per_binarized_weight']:.4f} | {bits3 / n3:.4f} | {t['bits_per_binarized_weight_with_scales']:.4f} | "
            f"{t_export:.2f} s = {t_export / step_s:.1f} steps | {t_load:.2f} s = {t_load / step_s:.1f} steps |")
    return buf, line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20,resnet18")
    parser.add_argument("--ckpt", action="append", default=[], help="trained run directory (repeatable)")
    args = parser.parse_args()
    print("| model | format | file bytes | fp32 ckpt bytes | ratio | bits/binarized weight | bits/weight 3x3 layers | "
          "with scales | export | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for model in args.models.split(","):
        cfg = compose_cfg(ROOT / "outputs" / "bench_export" / model, ["dataset=fashion_mnist", f"model={model}"])
        torch.manual_seed(0)
        module = build_module(cfg).eval()
        ckpt = fp32_checkpoint_bytes(module)
        step = train_step_seconds(module, cfg)
        notes.append(f"{model}: one training step (batch 128, {cfg.dataset.image_size} px, Adam, CPU) = {step:.2f} s")
        bwn, line = report(f"{model} BWN (init)", module, cfg, "packed", ckpt, step)
        print(line)
        ent, line = report(f"{model} BWN (init)", module, cfg, "entropy", ckpt, step)
        print(line)
        notes.append(f"{model} init: {entropy_check(module, ent, bwn)}; mean layer entropy "
                     f"{sum(layer_entropies(module).values()) / len(layer_entropies(module)):.3f} bits")
        for temperature in (0.95, 1.3):  # about 7.8 and 8.4 bits per kernel at large N
            skew_kernels(module, temperature=temperature)
            h = layer_entropies(module)
            label = f"{model} BWN (skewed stand-in T={temperature})"
            bwn, line = report(label, module, cfg, "packed", ckpt, step)
            print(line)
            ent, line = report(label, module, cfg, "entropy", ckpt, step)
            print(line)
            notes.append(f"{label}: layer entropy {min(h.values()):.2f}..{max(h.values()):.2f} bits; "
                         f"{entropy_check(module, ent, bwn)}")
        for shared in (False, True):  # per-layer codebooks (9 x 32 bits each) or one shared codebook
            torch.manual_seed(0)
            module = build_module(cfg).eval()
            layers = quantizable_layers(module.net)
            quantize(layers, {k: 5 for k in layers}, shared=shared)
            for fmt in ("packed", "entropy"):
                kind = "shared codebook" if shared else "per-layer codebooks"
                _, line = report(f"{model} QBN n=5, {kind} (init)", module, cfg, fmt, ckpt, step)
                print(line)
    for run_dir in args.ckpt:
        module, cfg = model_from_checkpoint(run_dir, require_binary=False)
        ckpt_file = Path(run_dir) / "checkpoints" / "last.ckpt"
        ckpt = fp32_checkpoint_bytes(module)
        step = train_step_seconds(module, cfg)
        label = f"{cfg.model.name} trained ({Path(run_dir).name})"
        bwn, line = report(label, module, cfg, "packed", ckpt, step)
        print(line)
        ent, line = report(label, module, cfg, "entropy", ckpt, step)
        print(line)
        h = layer_entropies(module)
        qbn = any(getattr(m, "codebook", None) is not None for m in binary_layers(module.net).values())
        notes.append(f"{label}: last.ckpt {ckpt_file.stat().st_size:,} bytes; layer kernel entropy "
                     f"{min(h.values()):.3f}..{max(h.values()):.3f} bits; "
                     + ("QBN (entropy of ids <= n bits)" if qbn else entropy_check(module, ent, bwn)))
    print()
    for n in notes:
        print("- " + n)


if __name__ == "__main__":
    main()
