"""Sign dynamics: formulas against direct loops, snapshots, the flip tracker against
larq's FlipRatio, weight statistics, offline analysis of damaged run directories, the report."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from qbn.analysis.sign_dynamics import analyze_run
from qbn.analysis.sign_dynamics import main as analyze_main
from qbn.binary import BinaryConv2d, BinaryPolicy, binarize
from qbn.callbacks.sign_flips import SignFlipTracker
from qbn.callbacks.weight_stats import weight_stats
from qbn.models import resnet20
from qbn.signs import (
    SnapshotError,
    distance_to_final,
    epoch_changes,
    flip_fraction,
    freeze_epoch,
    last_flip_epochs,
    list_snapshots,
    load_snapshot,
    model_signs,
    save_snapshot,
    snapshot_layers,
    snapshot_path,
    stable_fraction,
)

# ---- direct loops (the obvious computations the formulas must match) ----------------------


def loop_c(h):
    E, N = len(h) - 1, len(h[0])
    return [sum(h[e][i] != h[e - 1][i] for i in range(N)) / N for e in range(1, E + 1)]


def loop_d(h):
    E, N = len(h) - 1, len(h[0])
    return [sum(h[e][i] != h[E][i] for i in range(N)) / N for e in range(E + 1)]


def loop_L(h, labels=None):
    labels = labels or list(range(len(h)))
    out = []
    for i in range(len(h[0])):
        last = 0
        for r in range(1, len(h)):
            if h[r][i] != h[r - 1][i]:
                last = labels[r]
        out.append(last)
    return out


def loop_E(L, q):
    e = 0
    while sum(x <= e for x in L) / len(L) < q:
        e += 1
    return e


def as_lists(h: torch.Tensor):
    return [[bool(v) for v in row] for row in h]


# Hand-built: w0 never flips; w1 flips only in the last epoch; w2 flips at 1 and back at 2;
# w3 flips once at 1.
HAND = torch.tensor([[1, 1, 1, 0],
                     [1, 1, 0, 1],
                     [1, 1, 1, 1],
                     [1, 0, 1, 1]], dtype=torch.bool)


def test_hand_built_history_known_answers():
    assert epoch_changes(HAND).tolist() == [0.5, 0.25, 0.25]
    assert distance_to_final(HAND).tolist() == [0.5, 0.5, 0.25, 0.0]
    assert last_flip_epochs(HAND).tolist() == [0, 3, 2, 1]
    L = last_flip_epochs(HAND)
    assert [freeze_epoch(L, q) for q in (0.25, 0.5, 0.75, 0.90, 0.95, 0.99, 1.0)] == [0, 1, 2, 3, 3, 3, 3]
    assert stable_fraction(L, 3).tolist() == [0.25, 0.5, 0.75, 1.0]
    assert flip_fraction(HAND[0], HAND[3]) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_formulas_match_loops_on_random_histories(seed):
    g = torch.Generator().manual_seed(seed)
    E, N = 6, 50
    h = torch.rand(E + 1, N, generator=g) < 0.5
    h[:, :5] = True                   # never flip
    h[-1, 5:10] = ~h[-2, 5:10]        # flip in the last epoch
    lists = as_lists(h)
    assert epoch_changes(h).tolist() == pytest.approx(loop_c(lists))
    assert distance_to_final(h).tolist() == pytest.approx(loop_d(lists))
    L = last_flip_epochs(h)
    assert L.tolist() == loop_L(lists)
    assert (L[:5] == 0).all() and (L[5:10] == E).all()
    for q in (0.5, 0.9, 0.95, 0.99):
        assert freeze_epoch(L, q) == loop_E(L.tolist(), q)
    assert stable_fraction(L, E).tolist() == pytest.approx([sum(x <= e for x in L.tolist()) / N for e in range(E + 1)])


def test_last_flip_with_epoch_labels():
    labels = [0, 2, 5, 6]
    assert last_flip_epochs(HAND, labels).tolist() == loop_L(as_lists(HAND), labels) == [0, 6, 5, 2]
    assert last_flip_epochs(HAND[:1]).tolist() == [0, 0, 0, 0]


# ---- snapshots (pack_bits itself: tests/test_binary.py) ------------------------------------

def binary_resnet20() -> nn.Module:
    torch.manual_seed(0)
    return binarize(resnet20(num_classes=10, in_channels=1), BinaryPolicy())


def test_snapshot_round_trip_weights_only_and_size(tmp_path):
    net = binary_resnet20()
    signs = model_signs(net)
    n = sum(s.numel() for s in signs.values())
    path = save_snapshot(snapshot_path(tmp_path, 3), signs, 3)
    assert path == tmp_path / "signs" / "epoch_003.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 3 and snapshot_layers(raw)[0] == list(signs)
    back = load_snapshot(path)
    assert list(back) == list(signs) and all(torch.equal(back[k], signs[k]) for k in signs)
    names_bytes = sum(len(k) for k in signs)  # the layer names; shapes and container count as overhead
    assert os.path.getsize(path) <= 1.02 * n / 8 + names_bytes
    assert list(list_snapshots(tmp_path)) == [3]


def test_truncated_and_missing_snapshot_messages(tmp_path):
    net = binary_resnet20()
    path = save_snapshot(snapshot_path(tmp_path, 1), model_signs(net), 1)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(SnapshotError, match="epoch_001.pt is unreadable or truncated"):
        load_snapshot(path)
    with pytest.raises(SnapshotError, match="epoch_002.pt is missing"):
        load_snapshot(snapshot_path(tmp_path, 2))


# ---- the flip tracker against larq's FlipRatio --------------------------------------------

class LarqFlipRatio:
    """A line-by-line port of larq.metrics.FlipRatio (update_state / result / reset_states)."""

    def __init__(self, shape):
        self.previous = torch.zeros(shape)
        self.total, self.count, self.size = 0.0, 0, float(torch.tensor(shape).prod())

    def update_state(self, values):
        unchanged = int(torch.count_nonzero(self.previous == values))
        flip_ratio = 1 - unchanged / self.size
        self.total += flip_ratio * (1.0 if self.count > 0 else 0.0)   # tf.sign(count)
        self.count += 1
        self.previous = values.clone()

    def result(self):
        return self.total / (self.count - 1) if self.count > 1 else 0.0  # div_no_nan


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = BinaryConv2d(2, 3, 3)
        self.b = BinaryConv2d(3, 4, 1)


def test_epoch_flip_ratio_equals_larq_flip_ratio():
    """larq updates the metric with the signs in use at every step; fed the signs before the
    epoch's first step and after each step, its result is our epoch flip ratio."""
    torch.manual_seed(0)
    net = TwoLayers()
    tracker = SignFlipTracker()
    tracker.start(net)
    tracker.reset(0)

    def pm1(t):
        return t.float() * 2 - 1

    larq = {n: LarqFlipRatio(m.weight.shape) for n, m in (("a", net.a), ("b", net.b))}
    larq_all = LarqFlipRatio((net.a.weight.numel() + net.b.weight.numel(),))
    for name, m in (("a", net.a), ("b", net.b)):
        larq[name].update_state(pm1(m.signs()))
    larq_all.update_state(pm1(torch.cat([net.a.signs().flatten(), net.b.signs().flatten()])))
    for step in range(7):
        with torch.no_grad():  # an "optimizer step" that moves some weights across zero
            for m in (net.a, net.b):
                m.weight.add_(0.2 * torch.randn_like(m.weight) * (step % 3))
        tracker.after_step(net)
        for name, m in (("a", net.a), ("b", net.b)):
            larq[name].update_state(pm1(m.signs()))
        larq_all.update_state(pm1(torch.cat([net.a.signs().flatten(), net.b.signs().flatten()])))
    overall, per_layer = tracker.epoch_ratios()
    assert overall > 0
    assert overall == pytest.approx(larq_all.result(), rel=1e-9)
    assert per_layer["a"] == pytest.approx(larq["a"].result(), rel=1e-9)
    assert per_layer["b"] == pytest.approx(larq["b"].result(), rel=1e-9)
    # and the definition itself: mean over steps of the step flip ratio, size-weighted overall
    state = tracker.state_dict()
    assert state["steps"] == 7 and state["names"] == ["a", "b"]


def test_flip_tracker_counts_fixed_signs_as_never_flipping():
    net = TwoLayers()
    net.a.fix_signs(torch.ones_like(net.a.weight, dtype=torch.bool))
    tracker = SignFlipTracker()
    tracker.start(net)
    tracker.reset(0)
    with torch.no_grad():
        net.a.weight.neg_()
        net.b.weight.neg_()
    tracker.after_step(net)
    _, per_layer = tracker.epoch_ratios()
    zeros_b = (net.b.weight == 0).sum().item()
    assert per_layer["a"] == 0.0
    assert per_layer["b"] == pytest.approx(1 - zeros_b / net.b.weight.numel())


# ---- weight statistics ------------------------------------------------------------------------

def test_weight_stats_match_loops_and_leave_lq_alpha_alone():
    torch.manual_seed(1)
    net = TwoLayers()
    with torch.no_grad():
        net.a.weight.mul_(4)  # some weights outside the clip range
    net.b = BinaryConv2d(3, 4, 1, scaling="lq")
    net.train()
    lq_alpha = net.b.scaling.alpha.clone()
    stats = weight_stats(net)
    w = net.a.weight.detach().flatten().tolist()
    assert stats["a"]["l2"] == pytest.approx(sum(x * x for x in w) ** 0.5, rel=1e-5)
    assert stats["a"]["mean_abs"] == pytest.approx(sum(abs(x) for x in w) / len(w), rel=1e-5)
    assert stats["a"]["clip_share"] == pytest.approx(sum(abs(x) <= 1 for x in w) / len(w))
    per_channel = [sum(abs(x) for x in row) / len(row) for row in net.a.weight.detach().flatten(1).tolist()]
    assert stats["a"]["alpha_mean"] == pytest.approx(sum(per_channel) / len(per_channel), rel=1e-5)
    assert stats["a"]["alpha_min"] == pytest.approx(min(per_channel), rel=1e-5)
    assert stats["a"]["alpha_max"] == pytest.approx(max(per_channel), rel=1e-5)
    assert torch.equal(net.b.scaling.alpha, lq_alpha)
    none_net = TwoLayers()
    none_net.a = BinaryConv2d(2, 3, 3, scaling="none")
    assert "alpha_mean" not in weight_stats(none_net)["a"]


# ---- offline analysis and the report on hand-made run directories ------------------------

def write_history(run_dir, history: torch.Tensor, shapes=((3, 2, 2), (4,))):
    """Snapshots of a (E + 1) x N history split into layers of `shapes`."""
    sizes = [int(torch.tensor(s).prod()) for s in shapes]
    assert sum(sizes) == history.shape[1]
    for e, row in enumerate(history):
        parts = row.split(sizes)
        signs = {f"l{i}": p.view(s) for i, (p, s) in enumerate(zip(parts, shapes, strict=False))}
        save_snapshot(snapshot_path(run_dir, e), signs, e)


def random_history(E=5, N=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(E + 1, N, generator=g) < 0.5


def test_analysis_matches_formulas(tmp_path):
    h = random_history()
    write_history(tmp_path, h)
    result = analyze_run(tmp_path)
    saved = json.loads((tmp_path / "signs.json").read_text())
    assert saved["epochs"] == list(range(6)) and saved["problems"] == []
    o = saved["overall"]
    lists = as_lists(h)
    assert o["d_e"] == pytest.approx(loop_d(lists))
    assert o["c_e"] == pytest.approx(loop_c(lists))
    L = loop_L(lists)
    assert o["E_0.95"] == loop_E(L, 0.95) and o["E_0.90"] == loop_E(L, 0.90)
    assert o["last_flip_histogram"] == [L.count(e) for e in range(6)]
    assert saved["layers"]["l1"]["d_e"] == pytest.approx(loop_d(as_lists(h[:, 12:])))
    assert result["overall"]["E_0.99"] == o["E_0.99"]


def test_analysis_names_missing_and_truncated_epochs(tmp_path, capsys):
    h = random_history(E=5)
    write_history(tmp_path, h)
    os.remove(snapshot_path(tmp_path, 3))
    with open(snapshot_path(tmp_path, 2), "r+b") as f:
        f.truncate(40)
    assert analyze_main([str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "epoch 2:" in err and "truncated" in err
    assert "epoch 3: snapshot signs/epoch_003.pt is missing" in err
    saved = json.loads((tmp_path / "signs.json").read_text())
    assert saved["epochs"] == [0, 1, 4, 5] and saved["missing"] == [3]
    rows = h[[0, 1, 4, 5]]
    assert saved["overall"]["d_e"] == pytest.approx(loop_d(as_lists(rows)))
    assert saved["overall"]["E_0.99"] == max(loop_L(as_lists(rows), [0, 1, 4, 5]))


def test_analysis_of_an_empty_run_dir_says_so(tmp_path, capsys):
    assert analyze_main([str(tmp_path)]) == 1
    assert "need at least 2 readable snapshots" in capsys.readouterr().err
    assert analyze_main([str(tmp_path / "nope")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_report_on_a_hand_made_run_dir(tmp_path):
    from qbn.report import SECTIONS, write_report

    write_history(tmp_path, random_history())
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "test/acc": 0.9, "model": "resnet20",
                                                       "optimizer": "adam", "lr": 0.002, "scheduler": "cosine"}))
    lines = ["epoch,step,signs/flip_ratio,signs/flip_ratio/l0,weights/l2/l0,weights/alpha_mean/l0,weights/clip_share"]
    lines += [f"{e},{10 * e},{0.01 / (e + 1)},{0.02 / (e + 1)},{1 + e},{0.1},{0.9}" for e in range(5)]
    (tmp_path / "metrics.csv").write_text("\n".join(lines) + "\n")
    SECTIONS.append(lambda run_dir: "## Extra section")
    try:
        report = write_report(tmp_path).read_text()
    finally:
        SECTIONS.pop()
    assert "| test accuracy % | 90.00 |" in report and "## Extra section" in report
    for name in ("flip_ratio", "sign_distance", "last_flip", "freeze_epochs", "weights"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000
        assert f"figures/{name}.png" in report


@pytest.mark.slow  # importing wandb takes tens of seconds on the shared CPUs
def test_report_figures_go_to_wandb_as_images(tmp_path):
    from qbn.report import log_figures, write_report

    write_history(tmp_path, random_history())
    write_report(tmp_path)

    class Experiment:
        logged: dict = {}

        def log(self, data):
            self.logged.update(data)

    class WandbLogger:  # stands in for pytorch_lightning's (matched by class name)
        experiment = Experiment()

    class CSVLogger:
        experiment = None

    log_figures([CSVLogger(), WandbLogger()], tmp_path)
    import wandb

    logged = WandbLogger.experiment.logged
    assert set(logged) == {"report/sign_distance", "report/last_flip", "report/freeze_epochs"}
    assert all(isinstance(v, wandb.Image) for v in logged.values())


def test_instruments_on_a_full_precision_net_do_nothing():
    net = nn.Sequential(nn.Conv2d(1, 2, 3))
    tracker = SignFlipTracker()
    tracker.start(net)
    tracker.reset(0)
    tracker.after_step(net)
    overall, per_layer = tracker.epoch_ratios()
    assert per_layer == {} and overall != overall
    assert weight_stats(net) == {} and model_signs(net) == {}


def test_snapshot_schedule():
    from qbn.callbacks.sign_snapshots import SignSnapshots

    every3 = SignSnapshots("unused", every_n_epochs=3, epochs=[1])
    assert [e for e in range(1, 11) if every3.wanted(e, last=e == 10)] == [1, 3, 6, 9, 10]
    only = SignSnapshots("unused", every_n_epochs=0, epochs=[2, 4])
    assert [e for e in range(1, 8) if only.wanted(e, last=e == 7)] == [2, 4, 7]
    with pytest.raises(ValueError, match="every_n_epochs"):
        SignSnapshots("unused", every_n_epochs=-1)


def test_analysis_of_a_run_that_starts_after_epoch_0(tmp_path):
    h = random_history(E=5)
    write_history(tmp_path, h)
    for e in (0, 1):
        os.remove(snapshot_path(tmp_path, e))
    saved = analyze_run(tmp_path)
    assert saved["epochs"] == [2, 3, 4, 5] and saved["missing"] == []
    assert len(saved["problems"]) == 1 and "no epoch 000" in saved["problems"][0]
    L = [max(x, 2) for x in loop_L(as_lists(h[2:]), [2, 3, 4, 5])]  # never flipped: the first epoch, 2
    assert last_flip_epochs(h[2:], [2, 3, 4, 5]).tolist() == L
    assert saved["overall"]["last_flip_histogram"] == [L.count(e) for e in (2, 3, 4, 5)]
    assert saved["overall"]["E_0.90"] == loop_E(L, 0.90) >= 2
