"""Benchmark (not a test): cost of the sign instruments on a training step, and snapshot size.

    .venv/bin/python experiments/bench/sign_instruments.py [--rounds 10 --block 4 --steps-per-epoch 430]

Binary ResNet-20 (xnor, clipped STE), 1 x 28 x 28 inputs (Fashion-MNIST size), batch 128, Adam,
on the CPU. Blocks of `block` training steps alternate between instruments off and on (the flip
tracker's per-step work: one sign comparison and sum per layer, counts kept on the device, and the
last-flip step of every weight updated from the same comparison), in one
process, so a shared machine's load hits both alike; the ratio reported is the median over rounds
of (on block time / off block time). On a heavily shared CPU that ratio is noisy, so the tracker's
own time inside the "on" steps is also timed and reported as 1 + tracker time / step time. Per-epoch
work (the flip ratio read-back, weight statistics and one snapshot written to disk) is timed on its
own and amortised over `steps_per_epoch` (430 = Fashion-MNIST's 55,000 training images / 128).
Targets: step-time ratio <= 1.05, snapshot size <= 1.02 x N/8 bytes plus names.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from qbn.binary import BinaryPolicy, binarize, binary_param_count
from qbn.callbacks.sign_flips import SignFlipTracker
from qbn.callbacks.weight_stats import weight_stats
from qbn.models import resnet20
from qbn.signs import last_flip_path, model_signs, save_last_flip, save_snapshot, snapshot_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=4, help="training steps per timed block")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps-per-epoch", type=int, default=430)
    args = ap.parse_args()

    torch.manual_seed(0)
    net = binarize(resnet20(num_classes=10, in_channels=1), BinaryPolicy(scaling="xnor"))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    tracker = SignFlipTracker()
    tracker.start(net)
    tracker.reset(0)

    instrument_s: list[float] = []  # the tracker's own time inside the "on" steps
    steps = [0]                      # the optimizer step count the last-flip steps record

    def step(instrumented: bool) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        steps[0] += 1
        if instrumented:
            t = time.perf_counter()
            tracker.after_step(net, steps[0])
            instrument_s.append(time.perf_counter() - t)

    def block(instrumented: bool) -> float:
        t = time.perf_counter()
        for _ in range(args.block):
            step(instrumented)
        return time.perf_counter() - t

    for _ in range(2):  # warm-up
        step(True)
        step(False)
    instrument_s.clear()
    ratios, on_times, off_times = [], [], []
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {inst: block(inst) for inst in order}
        off_times.append(times[False])
        on_times.append(times[True])
        ratios.append(times[True] / times[False])

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        reps = 5
        for e in range(reps):
            tracker.epoch_ratios()
            weight_stats(net)
            path = save_snapshot(snapshot_path(tmp, e), model_signs(net), e)
            save_last_flip(last_flip_path(tmp), tracker.last_flip_steps(), steps[0])
        per_epoch = (time.perf_counter() - t) / reps
        size = os.path.getsize(path)
    names = sum(len(n) for n in model_signs(net))
    n = binary_param_count(net)
    step_off = statistics.median(off_times) / args.block
    median_ratio = statistics.median(ratios)
    epoch_share = per_epoch / (args.steps_per_epoch * step_off)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.rounds} rounds x 2 blocks x {args.block} steps")
    print(f"step time off: median {1000 * step_off:.1f} ms; "
          f"on: median {1000 * statistics.median(on_times) / args.block:.1f} ms")
    print(f"per-step ratio on/off: median {median_ratio:.4f} "
          f"(min {min(ratios):.4f}, max {max(ratios):.4f}; target <= 1.05)")
    direct = 1 + statistics.median(instrument_s) / step_off
    mean_based = 1 + sum(instrument_s) / (sum(on_times) - sum(instrument_s))
    print(f"tracker's own time per step: median {1000 * statistics.median(instrument_s):.2f} ms, mean "
          f"{1000 * statistics.mean(instrument_s):.2f} ms; 1 + median tracker / median step = {direct:.4f} "
          f"(robust to a shared CPU's load; with means, preemption spikes included: {mean_based:.4f})")
    print(f"per-epoch work (flip read-back + weight stats + snapshot): {1000 * per_epoch:.1f} ms; "
          f"amortised over {args.steps_per_epoch} steps: +{epoch_share:.5f}; all instruments: "
          f"{direct + epoch_share:.4f} (median tracker), {median_ratio + epoch_share:.4f} (alternated blocks)")
    print(f"snapshot: {size} bytes for N = {n} binarized weights; N/8 = {n / 8:.0f}; "
          f"size / (N/8) = {size / (n / 8):.4f}; "
          f"(size - {names} bytes of names) / (N/8) = {(size - names) / (n / 8):.4f} (target <= 1.02)")


if __name__ == "__main__":
    main()
