"""Claim 3 against a null: the Miller-Madow entropy against its formula, the shuffled null (each
layer's +1 count kept exactly, ~9 bits for balanced random signs), and kernels.json / summary.json."""

from __future__ import annotations

import math

import pytest
import torch

from qbn.kernels.histograms import (
    entropy_miller_madow,
    histogram,
    kernel_ids,
    null_stats,
    shuffled_signs,
)
from qbn.kernels.run_stats import kernel_stats, summary_fields


def loop_entropy_mm(counts):
    n = sum(counts)
    h = 0.0
    for c in counts:
        if c:
            h -= c / n * math.log2(c / n)
    m = sum(1 for c in counts if c)
    return h + (m - 1) / (2 * n * math.log(2))


def test_miller_madow_against_its_formula():
    counts = [5, 0, 3, 1, 0, 0, 7] + [0] * 505
    assert entropy_miller_madow(torch.tensor(counts)) == pytest.approx(loop_entropy_mm(counts), abs=1e-12)
    # one non-empty bin: no correction, entropy 0; no kernels at all: 0
    assert entropy_miller_madow(torch.tensor([4] + [0] * 511)) == 0.0
    assert entropy_miller_madow(torch.zeros(512, dtype=torch.long)) == 0.0
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 4, (512,), generator=g).tolist()
    assert entropy_miller_madow(torch.tensor(counts)) == pytest.approx(loop_entropy_mm(counts), abs=1e-12)


def test_shuffled_null_keeps_each_layers_plus_one_count_exactly():
    g = torch.Generator().manual_seed(1)
    signs = {"a": torch.rand(16, 8, 3, 3, generator=g) < 0.8, "b": torch.rand(32, 16, 3, 3, generator=g) < 0.3,
             "c": torch.rand(8, 4, generator=g) < 0.5}
    shuffled = shuffled_signs(signs, torch.Generator().manual_seed(7))
    for name, s in signs.items():
        assert shuffled[name].shape == s.shape and int(shuffled[name].sum()) == int(s.sum())
    assert not torch.equal(shuffled["a"], signs["a"])           # a permutation, not the identity
    again = shuffled_signs(signs, torch.Generator().manual_seed(7))
    assert all(torch.equal(again[n], shuffled[n]) for n in signs)  # seeded


def test_null_of_balanced_random_signs_is_near_nine_bits():
    # clustered signs (every kernel all +1 or all -1, half each): the data has 1 bit, its null ~9
    o, i = 128, 128
    pattern = (torch.arange(o * i) % 2 == 0).view(o, i, 1, 1).expand(o, i, 3, 3).clone()
    null = null_stats({"layer": pattern}, seed=3)
    n = o * i
    assert null["overall"]["entropy_mm"] == pytest.approx(9.0, abs=0.02)
    assert null["overall"]["entropy"] < null["overall"]["entropy_mm"] < 9.0 + 0.02
    assert null["overall"]["entropy_mm"] - null["overall"]["entropy"] == pytest.approx(
        (int((histogram(kernel_ids(shuffled_signs({"l": pattern}, torch.Generator().manual_seed(3))["l"])) > 0).sum())
         - 1) / (2 * n * math.log(2)), rel=1e-9)
    # the 8 fullest of 512 bins of a finite sample hold more than 8/512: the reason a null beats the
    # uniform line (about 32 +- 5.7 kernels a bin here, the top 8 near +2.4 sd)
    assert 8 / 512 < null["overall"]["coverage"]["top8"] < 0.03
    assert set(null["layers"]) == {"layer"}


def test_kernels_json_and_summary_carry_entropy_mm_and_the_null():
    g = torch.Generator().manual_seed(2)
    signs = {"l1": torch.rand(32, 16, 3, 3, generator=g) < 0.5, "l2": torch.rand(16, 16, 3, 3, generator=g) < 0.6,
             "short": torch.rand(32, 16, 1, 1, generator=g) < 0.5}
    stats = kernel_stats(signs)
    for part in (stats["overall"], *stats["layers"].values()):
        assert part["entropy_mm"] > part["entropy"]
        assert set(part["null"]) == {"entropy", "entropy_mm", "coverage"}
        assert set(part["null"]["coverage"]) == {"top1", "top8", "top32"}
    assert "short" not in stats["layers"]
    fields = summary_fields(stats)
    for key in ("kernels/entropy_mm", "kernels/null_entropy", "kernels/null_entropy_mm", "kernels/null_top1",
                "kernels/null_top8", "kernels/null_top32"):
        assert key in fields, key
    assert fields["kernels/null_entropy_mm"] == stats["overall"]["null"]["entropy_mm"]
