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
import copy
import io
import json
import time
from pathlib import Path

import hydra
import torch

from qbn.binary import binary_layers
from qbn.checkpoint import model_from_checkpoint
from qbn.export import export_module, load_bytes, report_bytes
from qbn.export.evaluate import compose_dataset
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
            f"{t['bits_per_binarized_weight']:.4f} | {bits3 / n3:.4f} | "
            f"{t['bits_per_binarized_weight_with_scales']:.4f} | "
            f"{t_export:.2f} s = {t_export / step_s:.1f} steps | {t_load:.2f} s = {t_load / step_s:.1f} steps |")
    return buf, line


def interleaved_times(module, cfg, fmt: str, fold: bool = False, rounds: int = 3) -> tuple[bytes, float, float, float]:
    """(file bytes, median step, export, load seconds), the three measured in turn each round so
    shared load hits them alike."""
    step, export, load = [], [], []
    for _ in range(rounds):
        step.append(train_step_seconds(module, cfg, repeats=1))
        buf, t = timed(lambda: export_module(module, cfg, fmt=fmt, fold_bn=fold))
        export.append(t)
        load.append(timed(lambda b=buf: load_bytes(b))[1])
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return buf, med(step), med(export), med(load)


def trained_line(label: str, buf: bytes, limit: float | None = None, what: str = "") -> tuple[str, dict]:
    t = report_bytes(buf)["totals"]
    split = ", ".join(f"{k} {v:.4f}" for k, v in t["split_bits_per_binarized_weight"].items())
    check = "" if limit is None else f" {what} {'yes' if t['bits_per_binarized_weight'] <= limit else 'NO'}"
    return (f"| {label} | {t['file_bytes']:,} | {t['bits_per_binarized_weight']:.4f}{check} | "
            f"{t['file_bits_per_binarized_weight']:.4f} = {split} |"), t


@torch.no_grad()
def predictions(buf: bytes, test) -> torch.Tensor:
    model = load_bytes(buf)
    return torch.cat([model(x).argmax(dim=1) for x, _ in test])


def test_batches(cfg):
    """The full Fashion-MNIST (or the run's dataset) test split, as a list of batches."""
    ds = compose_dataset([f"dataset={cfg.dataset.name}"]).dataset
    dm = hydra.utils.instantiate(ds, _convert_="all")
    dm.prepare_data()
    dm.setup("test")
    return list(dm.test_dataloader())


def trained_report(run_dir: str) -> list[str]:
    """A trained run: entropy format vs the kernel entropy of kernels.json, its QBN n = 5 (for a
    BWN), --fold against the default, export/load over a training step."""
    module, cfg = model_from_checkpoint(run_dir, require_binary=False)
    name = f"{cfg.model.name} {Path(run_dir).parent.name}/{Path(run_dir).name}"
    qbn = any(getattr(m, "codebook", None) is not None for m in binary_layers(module.net).values())
    notes = []
    print(f"\n### {name}{' (QBN)' if qbn else ''}\n")
    print("| file | bytes | bits/binarized weight | whole file bits/binarized weight = split |")
    print("|---|---|---|---|")
    packed, step, t_export, t_load = interleaved_times(module, cfg, "packed")
    entropy_buf, _, t_export_e, t_load_e = interleaved_times(module, cfg, "entropy")
    notes.append(f"{name}: one training step {step:.3f} s; "
                 f"export {t_export / step:.2f} steps (entropy {t_export_e / step:.2f}), "
                 f"load {t_load / step:.2f} steps (entropy {t_load_e / step:.2f}); interleaved medians of 3")
    line, _ = trained_line("packed", packed)
    print(line)
    stats = Path(run_dir) / "kernels.json"
    if qbn:
        line, t = trained_line("entropy", entropy_buf, 5 / 9, "< 5/9:")
        print(line)
        rows = report_bytes(entropy_buf)["rows"]
        h = ", ".join(f"{r['layer']} {r['entropy']:.2f}" for r in rows if r.get("entropy") is not None)
        notes.append(f"{name}: index entropy per layer (bits/kernel): {h}")
    else:
        h = json.loads(stats.read_text())["overall"]["entropy"]
        line, t = trained_line("entropy", entropy_buf, h / 9 + 0.015, f"<= H/9 + 0.015 = {h / 9 + 0.015:.4f}:")
        print(line)
        notes.append(f"{name}: kernel entropy (kernels.json) {h:.4f} bits, H/9 = {h / 9:.4f}; entropy format "
                     f"{t['bits_per_binarized_weight']:.4f}, "
                     f"gap {t['bits_per_binarized_weight'] - h / 9:+.4f} bit/weight")
        q = copy.deepcopy(module)
        layers = quantizable_layers(q.net)
        quantize(layers, {k: 5 for k in layers})
        line, tq = trained_line("QBN n=5 (quantized here), packed", export_module(q, cfg), 5 / 9 + 0.005, "<= 0.5606:")
        print(line)
        line, tq = trained_line("QBN n=5 (quantized here), entropy", export_module(q, cfg, fmt="entropy"),
                                5 / 9, "< 5/9:")
        print(line)
    folded = export_module(module, cfg, fold_bn=True)
    line, _ = trained_line("packed --fold", folded)
    print(line)
    test = test_batches(cfg)
    a, b = predictions(packed, test), predictions(folded, test)
    labels = torch.cat([y for _, y in test])
    notes.append(f"{name}: --fold {len(folded):,} B vs packed {len(packed):,} B "
                 f"({1 - len(folded) / len(packed):.1%} smaller); "
                 f"{int((a != b).sum())} of {len(a)} test predictions change ({(a != b).float().mean():.2%}); "
                 f"accuracy {(a == labels).float().mean():.2%} packed, {(b == labels).float().mean():.2%} folded")
    return notes


def budget_table(run_dirs: list[str]) -> list[str]:
    """QBN fine-tuning runs side by side: how n was chosen, n per layer, bits, test accuracy."""
    print("\n### Bit budget vs one n for every layer (same BWN, same fine-tuning)\n")
    print("| run | choice | n per 3x3 layer "
          "| bits/binarized weight (qbn.kernels accounting: 9 bits per codeword) | test accuracy |")
    print("|---|---|---|---|---|")
    for run in run_dirs:
        s = json.loads((Path(run) / "summary.json").read_text())
        q = s.get("qbn") or {}
        if q.get("bits") is not None:
            choice = f"n = {q['bits']}"
        else:
            choice = f"budget {q.get('budget')} ({q.get('allocation', 'coverage')})"
        ns = " ".join(str(n) for n in (s.get("qbn_bits") or {}).values())
        acc = s.get("test/acc", s.get("test_acc"))
        print(f"| {Path(run).parent.name} | {choice} | {ns} | {s.get('bits_per_weight', float('nan')):.4f} | "
              f"{'-' if acc is None else f'{100 * acc:.2f} %'} |")
    return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20,resnet18", help="untrained models to measure ('' for none)")
    parser.add_argument("--ckpt", action="append", default=[], help="trained run directory (repeatable)")
    parser.add_argument("--compare", action="append", default=[],
                        help="QBN fine-tuning run directory for the budget-vs-uniform table (repeatable)")
    args = parser.parse_args()
    print("| model | format | file bytes | fp32 ckpt bytes | ratio | bits/binarized weight | bits/weight 3x3 layers | "
          "with scales | export | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for model in filter(None, args.models.split(",")):
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
        notes += trained_report(run_dir)
    if args.compare:
        notes += budget_table(args.compare)
    print()
    for n in notes:
        print("- " + n)


if __name__ == "__main__":
    main()
