"""Kernel statistics and the QBN mapping against direct computations (definitions: docs/study.md)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from qbn.kernels import (
    bits_accounting,
    choose_bits_for_budget,
    coverage,
    entropy,
    histogram,
    ids_to_kernels,
    kernel_ids,
    layer_bits,
    map_to_codebook,
    most_frequent,
    quantize_ste,
    select_codebook,
    symmetric_class,
    top_shares,
    uniform_coverage,
)
from qbn.kernels.codebook_choice import CodebookError, check_bits


def _loop_id(kernel: torch.Tensor) -> int:
    return sum(2 ** (3 * r + c) for r in range(3) for c in range(3) if kernel[r, c] > 0)


def test_kernel_id_hand_written():
    ones = torch.ones(1, 1, 3, 3)
    assert kernel_ids(ones).item() == 511
    assert kernel_ids(-ones).item() == 0
    for j in range(9):
        k = -torch.ones(1, 1, 3, 3)
        k[0, 0, j // 3, j % 3] = 1
        assert kernel_ids(k).item() == 2 ** j
        assert kernel_ids(k > 0).item() == 2 ** j     # bool input, True = +1


def test_kernel_ids_match_loop_and_roundtrip():
    g = torch.Generator().manual_seed(0)
    signs = torch.randn(5, 7, 3, 3, generator=g) >= 0
    ids = kernel_ids(signs)
    assert ids.shape == (5, 7) and ids.dtype == torch.long
    for o, i in itertools.product(range(5), range(7)):
        assert ids[o, i].item() == _loop_id(signs[o, i].float() * 2 - 1)
    assert torch.equal(ids_to_kernels(ids) > 0, signs)
    assert torch.equal(kernel_ids(ids_to_kernels(torch.arange(512)).unsqueeze(0)), torch.arange(512).unsqueeze(0))


def test_kernel_ids_reject_non_3x3():
    with pytest.raises(ValueError, match="3 x 3"):
        kernel_ids(torch.ones(2, 2, 1, 1))


def test_symmetric_class():
    ids = torch.arange(512)
    cls = symmetric_class(ids)
    assert cls.max().item() == 255 and len(cls.unique()) == 256
    for i in (0, 1, 200, 255, 256, 511):
        assert cls[i].item() == min(i, 511 - i)


def test_histogram_and_coverage_on_built_tensor():
    ids = torch.tensor([0] * 5 + [511] * 3 + [7] * 2 + [9])          # 11 kernels
    hist = histogram(ids)
    assert hist.shape == (512,) and hist.sum().item() == 11
    assert hist[0] == 5 and hist[511] == 3 and hist[7] == 2 and hist[9] == 1
    cov = coverage(hist)
    expected = [5 / 11, 8 / 11, 10 / 11, 1.0]
    assert torch.allclose(cov[:4], torch.tensor(expected, dtype=torch.float64))
    assert torch.all(cov[3:] == 1.0)
    assert top_shares(hist, (1, 8))["top1"] == pytest.approx(5 / 11)
    assert uniform_coverage()[7].item() == pytest.approx(8 / 512)


def test_entropy_known_distributions():
    assert entropy(torch.ones(512, dtype=torch.long)) == pytest.approx(9.0)
    one = torch.zeros(512, dtype=torch.long)
    one[3] = 10
    assert entropy(one) == 0.0
    two = torch.zeros(512, dtype=torch.long)
    two[0], two[1] = 3, 1
    assert entropy(two) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_most_frequent_tie_rule():
    hist = torch.zeros(512, dtype=torch.long)
    hist[[5, 3, 400]] = 2
    hist[100] = 7
    assert most_frequent(hist, 4).tolist() == [100, 3, 5, 400]          # equal counts: lower id first
    assert most_frequent(hist, 6).tolist() == [100, 3, 5, 400, 0, 1]    # then unused ids, lowest first
    assert select_codebook(hist, 1).tolist() == [100, 3]


def _brute_force(weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    out = torch.empty(weight.shape[:2], dtype=torch.long)
    codes = ids_to_kernels(codebook).double()
    for o, i in itertools.product(range(weight.shape[0]), range(weight.shape[1])):
        w = weight[o, i].double()
        best, arg = -math.inf, -1
        for c in range(len(codebook)):
            s = (w * codes[c]).sum().item()
            if s > best + 1e-9:     # strictly better only: ties keep the earlier codeword
                best, arg = s, c
        out[o, i] = arg
    return out


@pytest.mark.parametrize("n", [1, 3, 5])
def test_mapping_matches_brute_force(n):
    g = torch.Generator().manual_seed(n)
    w = torch.randn(6, 5, 3, 3, generator=g)
    book = torch.randperm(512, generator=g)[: 2 ** n]
    assert torch.equal(map_to_codebook(w, book), _brute_force(w, book))


def test_mapping_ties_go_to_earlier_codeword():
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 0, 0] = 1.0                       # only position 0 matters: every code with bit 0 set ties
    book = torch.tensor([6, 3, 1, 511])       # 6 has bit 0 clear; 3, 1, 511 tie at score 1
    assert map_to_codebook(w, book).item() == 1
    w2 = torch.full((1, 1, 3, 3), 0.5)
    w2[0, 0, 0, 0], w2[0, 0, 0, 1] = 0.3, -0.3  # codes differing only at positions 0 and 1 tie
    a = 511 - 2                               # bit 0 +, bit 1 -
    b = 511 - 1                               # bit 0 -, bit 1 + : score lower by 1.2
    assert map_to_codebook(w2, torch.tensor([b, a])).item() == 1
    tie = torch.tensor([[[[0.3, 0.3, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]])
    assert map_to_codebook(tie, torch.tensor([511 - 1, 511 - 2])).item() == 0   # exact tie: first
    assert map_to_codebook(tie, torch.tensor([511 - 2, 511 - 1])).item() == 0


def test_full_codebook_reproduces_signs():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 4, 3, 3, generator=g)
    book = torch.arange(512)
    q = ids_to_kernels(book[map_to_codebook(w, book)])
    assert torch.equal(q, torch.where(w >= 0, 1.0, -1.0))


def test_quantize_ste_forward_and_gradient():
    g = torch.Generator().manual_seed(2)
    w = (torch.randn(3, 2, 3, 3, generator=g) * 1.5).requires_grad_()
    book = torch.tensor([0, 511])
    q = quantize_ste(w, book, "clipped")
    assert set(q.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(q.detach(), ids_to_kernels(book[map_to_codebook(w, book)]))
    assert set(kernel_ids(q.detach()).flatten().tolist()) <= {0, 511}
    upstream = torch.randn(q.shape, generator=g)
    q.backward(upstream)
    assert torch.allclose(w.grad, upstream * (w.detach().abs() <= 1))


def test_check_bits_messages():
    for bad in (0, 10, -1, 2.5, True):
        with pytest.raises(CodebookError, match="from 1 to 9"):
            check_bits(bad)
    assert check_bits(9) == 9


def test_bits_accounting_direct():
    acc = bits_accounting({"a": 100, "b": 50}, {"a": 4, "b": 9}, other_binary_weights=30)
    assert acc["binary_bits"] == 4 * 100 + 9 * 16 + 9 * 50 + 30
    assert acc["binarized_weights"] == 9 * 150 + 30
    shared = bits_accounting({"a": 100, "b": 50}, {"a": 4, "b": 4}, 0, shared=True)
    assert shared["binary_bits"] == 4 * 150 + 9 * 16
    assert layer_bits(10, 9) == 90 and layer_bits(10, None) == 90


def _hist(counts: dict[int, int]) -> torch.Tensor:
    h = torch.zeros(512, dtype=torch.long)
    for k, v in counts.items():
        h[k] = v
    return h


def test_budget_meets_budget_and_prefers_clustered_layer():
    g = torch.Generator().manual_seed(3)
    clustered = _hist({0: 3000, 511: 2000, 1: 500, 4: 500})          # 4 distinct kernels
    spread = torch.bincount(torch.randint(0, 512, (6000,), generator=g), minlength=512)
    hists = {"clustered": clustered, "spread": spread}
    for budget in (0.95, 0.8, 0.6, 0.4):
        bits = choose_bits_for_budget(hists, budget, other_binary_weights=100)
        acc = bits_accounting({k: int(h.sum()) for k, h in hists.items()}, bits, 100)
        assert acc["bits_per_weight"] <= budget + 1e-12
    bits = choose_bits_for_budget(hists, 0.95, 100)
    assert bits["clustered"] < 9 and bits["spread"] == 9            # the cheap layer goes first


def test_budget_impossible_is_one_clear_message():
    with pytest.raises(CodebookError, match="smallest codebooks allow at least"):
        choose_bits_for_budget({"a": _hist({0: 100})}, 0.05)


def test_mapping_when_own_pattern_is_a_codeword():
    g = torch.Generator().manual_seed(7)
    w = torch.randn(9, 6, 3, 3, generator=g)
    own = kernel_ids(w >= 0).flatten()
    book = torch.cat([own.unique()[:20], torch.tensor([0, 511])]).unique()[:16]   # some kernels covered, some not
    book = book[torch.randperm(book.numel(), generator=g)]
    assert torch.equal(map_to_codebook(w, book), _brute_force(w, book))
    w2 = w.clone()
    w2[0, 0, 1, 1] = 0.0                                  # a zero weight: its own pattern ties with a flipped one
    mine = int(kernel_ids(w2[:1, :1] >= 0).item())     # sign(0) = +1: bit 4 set
    flipped = mine ^ (1 << 4)
    assert map_to_codebook(w2[:1, :1], torch.tensor([flipped, mine])).item() == 0
    assert map_to_codebook(w2[:1, :1], torch.tensor([mine, flipped])).item() == 0


def test_flipped_share_against_a_direct_loop():
    from qbn.kernels import flipped_share, map_to_codebook

    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, 3, generator=g)
    book = torch.tensor([0, 511, 7])
    idx = map_to_codebook(w, book)
    flipped = total = 0.0
    for o in range(4):
        for i in range(3):
            code = ids_to_kernels(book[idx[o, i]])
            for a in range(3):
                for b in range(3):
                    v = float(w[o, i, a, b])
                    total += abs(v)
                    if (v >= 0) != (float(code[a, b]) > 0):
                        flipped += abs(v)
    assert flipped_share(w, book) == pytest.approx(flipped / total)
    assert flipped_share(w, kernel_ids(w >= 0).unique()) == 0.0   # every kernel its own codeword


def test_distortion_allocation_fits_the_budget_and_matches_brute_force():
    from qbn.kernels import choose_bits_by_distortion, layer_bits

    # three layers: a small one whose distortion falls fast with n, two larger flatter ones
    kernels = {"a": 64, "b": 512, "c": 1024}
    curves = {"a": {n: 0.5 * 2.0 ** -n for n in range(1, 10)},
              "b": {n: 0.2 * (9 - n) / 8 for n in range(1, 10)},
              "c": {n: 0.1 * (9 - n) / 8 for n in range(1, 10)}}
    for c in curves.values():
        c[9] = 0.0
    weights = 9 * sum(kernels.values())
    for budget in (0.3, 0.45, 0.6, 0.8):
        chosen = choose_bits_by_distortion(curves, kernels, budget)
        bits = sum(layer_bits(kernels[k], n) for k, n in chosen.items())
        assert bits <= budget * weights + 1e-9
        best = min(sum(curves[k][n] for k, n in zip(kernels, ns, strict=True))
                   for ns in itertools.product(range(1, 10), repeat=3)
                   if sum(layer_bits(kernels[k], n) for k, n in zip(kernels, ns, strict=True)) <= budget * weights)
        # Lagrangian + greedy fill: optimal up to the last hull step (here within 2 % of the optimum)
        assert sum(curves[k][n] for k, n in chosen.items()) <= best * 1.02 + 1e-12
    with pytest.raises(CodebookError, match="smallest codebooks allow at least"):
        choose_bits_by_distortion(curves, kernels, 0.05)
