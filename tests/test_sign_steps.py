"""Sign timing at step resolution: each weight's last-flip step kept by the flip tracker, E_q as a
share of training, the stable-share curve, the file, and signs.json / summary.json, each against a
direct loop over a small hand-made sign history."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from qbn.analysis.sign_dynamics import analyze_run
from qbn.binary import BinaryConv2d
from qbn.callbacks.sign_flips import SignFlipTracker
from qbn.signs import (
    SnapshotError,
    freeze_step,
    last_flip_path,
    load_last_flip,
    save_last_flip,
    save_snapshot,
    snapshot_path,
    stable_share_at,
    step_grid,
    step_timing,
)

# ---- direct loops ---------------------------------------------------------------------------


def loop_last_flip(history):
    """history[t] = signs after step t (row 0: before the first step) -> last step whose sign changed."""
    out = []
    for i in range(len(history[0])):
        last = 0
        for t in range(1, len(history)):
            if history[t][i] != history[t - 1][i]:
                last = t
        out.append(last)
    return out


def loop_e_frac(last, q, total):
    """The smallest step s with at least a share q of weights whose last flip is <= s, over total."""
    s = 0
    while sum(x <= s for x in last) < q * len(last) - 1e-9:
        s += 1
    return s / total


def loop_share(last, s):
    return sum(x <= s for x in last) / len(last)


# 6 steps, 8 weights: w0 never flips, w1 flips at 1, w2 at 1 and back at 2, w3 at 6, w4 at 3 and 5,
# w5 never, w6 at 4, w7 at 2.
HAND = [[1, 0, 1, 0, 1, 0, 1, 0],
        [1, 1, 0, 0, 1, 0, 1, 0],
        [1, 1, 1, 0, 1, 0, 1, 1],
        [1, 1, 1, 0, 0, 0, 1, 1],
        [1, 1, 1, 0, 0, 0, 0, 1],
        [1, 1, 1, 0, 1, 0, 0, 1],
        [1, 1, 1, 1, 1, 0, 0, 1]]


def tracked_last_flip(history, shape=(2, 1, 2, 2)):
    """Run the tracker over a history on a real binary layer: set the signs, call after_step(step)."""
    net = nn.Sequential(BinaryConv2d(shape[1], shape[0], shape[2], bias=False, scaling="none"))
    rows = [torch.tensor(r, dtype=torch.bool).view(shape) for r in history]
    with torch.no_grad():
        net[0].weight.copy_(torch.where(rows[0], 1.0, -1.0))
    tracker = SignFlipTracker(last_flip=True)
    tracker.start(net)
    for t, row in enumerate(rows[1:], start=1):
        with torch.no_grad():
            net[0].weight.copy_(torch.where(row, 1.0, -1.0))
        tracker.after_step(net, t)
    return tracker.last_flip_steps()["0"]


def test_tracker_last_flip_matches_a_loop_on_the_hand_made_history():
    last = tracked_last_flip(HAND)
    assert last.dtype == torch.int32 and last.shape == (2, 1, 2, 2)
    assert last.flatten().tolist() == loop_last_flip(HAND) == [0, 1, 2, 6, 5, 0, 4, 2]


def test_step_figures_match_loops_on_the_hand_made_history():
    last = loop_last_flip(HAND)
    total = len(HAND) - 1
    t = step_timing(torch.tensor(last), total, grid=list(range(total + 1)))
    flipped = [x for x in last if x > 0]
    assert t["ever_flipped"] == pytest.approx(6 / 8)
    for q in (0.90, 0.95, 0.99):
        assert t[f"E_{q:.2f}_frac"] == pytest.approx(loop_e_frac(last, q, total))
        assert t[f"E_{q:.2f}_frac_flipped"] == pytest.approx(loop_e_frac(flipped, q, total))
    # known answers: 90 % of 8 weights is 7.2 -> 8 weights -> s = 6; over the 6 flipped, 0.9 * 6 = 5.4 -> 6
    assert t["E_0.90_frac"] == pytest.approx(1.0)
    assert freeze_step(torch.tensor(last), 0.5) == 2   # 3 of 8 weights settled by step 1, 5 by step 2
    assert t["stable_share"]["all"] == pytest.approx([loop_share(last, s) for s in range(total + 1)])
    assert t["stable_share"]["flipped"] == pytest.approx([loop_share(flipped, s) for s in range(total + 1)])
    assert t["stable_share"]["share_of_training"] == pytest.approx([s / total for s in range(total + 1)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_figures_match_loops_on_random_histories(seed):
    g = torch.Generator().manual_seed(seed)
    steps, n = 40, 2 * 3 * 3 * 3
    flip_p = torch.linspace(0.3, 0.0, steps)            # flips get rarer, as with a decaying lr
    rows = [torch.rand(n, generator=g) < 0.5]
    for t in range(steps):
        rows.append(rows[-1] ^ (torch.rand(n, generator=g) < flip_p[t]))
    history = [[bool(v) for v in r] for r in rows]
    last = tracked_last_flip(history, (2, 3, 3, 3))
    assert last.flatten().tolist() == loop_last_flip(history)
    flat = last.flatten().tolist()
    t = step_timing(last, steps)
    for q in (0.90, 0.95, 0.99):
        assert t[f"E_{q:.2f}_frac"] == pytest.approx(loop_e_frac(flat, q, steps))
    assert t["stable_share"]["all"] == pytest.approx([loop_share(flat, s) for s in t["stable_share"]["steps"]])


def test_grid_and_edge_cases():
    grid = step_grid(1000)
    assert grid[0] == 0 and grid[-1] == 1000 and len(grid) == 101 and grid == sorted(set(grid))
    assert step_grid(7) == list(range(8))
    t = step_timing(torch.zeros(5, dtype=torch.int32), 10)
    assert t["ever_flipped"] == 0 and t["E_0.99_frac"] == 0 and t["E_0.90_frac_flipped"] is None
    assert t["stable_share"]["flipped"] is None
    assert stable_share_at(torch.tensor([3, 1, 2]), [0, 1, 2, 3]) == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_last_flip_file_round_trip_and_damage(tmp_path):
    path = last_flip_path(tmp_path)
    layers = {"a.conv": torch.tensor([[0, 3], [7, 1]], dtype=torch.int32), "b": torch.tensor([5], dtype=torch.int32)}
    save_last_flip(path, layers, 9)
    back, total = load_last_flip(path)
    assert total == 9 and list(back) == ["a.conv", "b"] and torch.equal(back["a.conv"], layers["a.conv"])
    assert torch.load(path, weights_only=True)["format"] == "qbn-last-flip-v1"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SnapshotError, match="unreadable or truncated"):
        load_last_flip(path)


def test_analysis_writes_step_figures_to_signs_json_and_summary(tmp_path):
    last = torch.tensor(loop_last_flip(HAND), dtype=torch.int32)
    save_last_flip(last_flip_path(tmp_path), {"l1": last[:4], "l2": last[4:]}, len(HAND) - 1)
    for e in (0, 1):   # two epoch snapshots so the epoch-level figures are there too
        save_snapshot(snapshot_path(tmp_path, e), {"l1": torch.ones(4, dtype=torch.bool) ^ (e == 1),
                                                   "l2": torch.ones(4, dtype=torch.bool)}, e)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "epochs": 1}))
    result = analyze_run(tmp_path)
    steps = json.loads((tmp_path / "signs.json").read_text())["steps"]
    assert steps["total_steps"] == 6 and set(steps["layers"]) == {"l1", "l2"}
    assert steps["overall"]["E_0.90_frac"] == pytest.approx(1.0)
    l1 = [0, 1, 2, 6]
    assert steps["layers"]["l1"]["E_0.90_frac"] == pytest.approx(loop_e_frac(l1, 0.9, 6))
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("signs/E_0.90_frac", "signs/E_0.95_frac", "signs/E_0.99_frac", "signs/E_0.90_frac_flipped",
                "signs/E_0.95_frac_flipped", "signs/E_0.99_frac_flipped", "signs/ever_flipped", "signs/E_0.90"):
        assert key in summary, key
    assert summary["signs/ever_flipped"] == pytest.approx(0.75)
    assert not math.isnan(result["overall"]["E_0.90"])


def test_tracker_state_carries_the_last_flip_steps_across_a_resume():
    from types import SimpleNamespace

    net = nn.Sequential(BinaryConv2d(1, 2, 2, bias=False, scaling="none"))
    first = SignFlipTracker(last_flip=True)
    first.start(net)
    with torch.no_grad():
        net[0].weight.neg_()                         # every sign flips at step 3
    first.after_step(net, 3)
    state = first.state_dict()
    resumed = SignFlipTracker(last_flip=True)
    resumed.load_state_dict(state)
    resumed.on_train_start(SimpleNamespace(global_step=3, current_epoch=0), SimpleNamespace(net=net))
    assert torch.equal(resumed.last_flip_steps()["0"], torch.full((2, 1, 2, 2), 3, dtype=torch.int32))
