"""Packed model file: round trips for every backbone and scaling, bit order against hand-packed
bytes, entropy coding, BN folding, sizes (docs/format.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qbn.binary import binary_layers
from qbn.export import PackedFileError, export_module, load_bytes, report_bytes
from qbn.export import adaptive as A
from qbn.export import entropy as E
from qbn.export.container import pack_uint, read_uint, unpack_uint
from qbn.kernels import kernel_ids
from qbn.kernels.quantize import quantizable_layers, quantize
from qbn.testing.export import make_module, skew_kernels, split_file

X = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def _assert_same(module, buf):
    """Identical effective weights and identical logits (torch.equal, not allclose)."""
    loaded = load_bytes(buf)
    for name, layer in binary_layers(module.net).items():
        assert torch.equal(loaded.net.get_submodule(name).weight, layer.effective_weight().detach()), name
    with torch.no_grad():
        assert torch.equal(loaded(X), module(X))
    assert not any(p.requires_grad for p in loaded.parameters())
    return loaded


# resnet32 and resnet56 only differ from resnet20 in depth, resnet34 from resnet18: those under -m slow
@pytest.mark.parametrize("model", ["resnet20", pytest.param("resnet32", marks=pytest.mark.slow),
                                   pytest.param("resnet56", marks=pytest.mark.slow), "vgg_small", "resnet18",
                                   pytest.param("resnet34", marks=pytest.mark.slow)])
def test_round_trip_backbones(model):
    module, cfg = make_module(f"model={model}")
    _assert_same(module, export_module(module, cfg))


@pytest.mark.parametrize("scaling", ["none", "xnor", "learnable", "lq"])
def test_round_trip_scalings(scaling):
    module, cfg = make_module("model=resnet20", f"scaling={scaling}", "model.backbone.shortcut=B")
    buf = export_module(module, cfg)
    _assert_same(module, buf)
    header, _ = split_file(buf)
    has_alpha = {name: "alpha" in e for name, e in header["layers"].items()}
    assert all(v == (scaling != "none") for v in has_alpha.values())
    assert any(e["shape"][2:] == [1, 1] for e in header["layers"].values())  # 1x1 shortcuts packed too


def test_round_trip_binary_classifier_and_fixed_signs():
    module, cfg = make_module("model=resnet20", "binary.classifier=true", "binary.first_conv=true")
    layer = binary_layers(module.net)["layer2.0.conv1"]
    g = torch.Generator().manual_seed(3)
    signs = torch.rand(layer.weight.shape, generator=g) > 0.5
    mask = torch.rand(layer.weight.shape, generator=g) > 0.5
    layer.fix_signs(signs, mask)
    assert not torch.equal(layer.signs(), layer.weight >= 0)
    _assert_same(module, export_module(module, cfg))


@pytest.mark.parametrize("fmt", ["packed", "entropy"])
def test_round_trip_qbn(fmt):
    module, cfg = make_module("model=resnet20")
    skew_kernels(module)
    layers = quantizable_layers(module.net)
    quantize(layers, {k: 5 for k in layers})
    buf = export_module(module, cfg, fmt=fmt)
    _assert_same(module, buf)
    header, data = split_file(buf)
    assert header["coded"]["codebooks"] == [32] * len(layers)
    for j, (name, layer) in enumerate(layers.items()):
        e = header["layers"][name]
        assert e["storage"] in (("codebook",) if fmt == "packed" else ("codebook", "entropy"))
        assert e["codebook"] == j  # codebooks are stored as sets, coded together in the payload
        if e["storage"] == "codebook":
            assert e["indices"]["dtype"] == "uint5"
            assert e["indices"]["nbytes"] == math.ceil(5 * e["shape"][0] * e["shape"][1] / 8)
            # indices are positions in the sorted codebook: the same kernels as codebook[indices]
            positions = read_uint(e["indices"], memoryview(data), "indices", 5)
            book = torch.sort(layer.codebook).values
            assert torch.equal(book[positions], layer.codebook[layer.codebook_indices()])
    if fmt == "entropy":
        assert any(e["storage"] == "entropy" for e in header["layers"].values())


def test_qbn_bits_per_weight():
    """n = 5: 5/9 bit per weight plus the codebooks, which the coded payload holds in about one
    subset of 512 each (log2 C(512, 32) = 169 bits; 9 x 32 = 288 stored raw) even for unrelated
    codebooks (random init: far less for a trained model's overlapping ones)."""
    module, cfg = make_module("model=resnet20")
    layers = quantizable_layers(module.net)
    quantize(layers, {k: 5 for k in layers})
    buf = export_module(module, cfg)
    report = report_bytes(buf)
    header, _ = split_file(buf)
    kernels = sum(m.weight.shape[0] * m.weight.shape[1] for m in layers.values())
    payload = 8 * header["coded"]["payload"]["nbytes"]
    index_bits = sum(math.ceil(5 * m.weight.shape[0] * m.weight.shape[1] / 8) * 8 for m in layers.values())
    assert report["totals"]["bits_per_binarized_weight"] == pytest.approx((index_bits + payload) / (9 * kernels))
    subset = (math.lgamma(513) - math.lgamma(33) - math.lgamma(481)) / math.log(2)
    assert payload < 1.05 * len(layers) * subset + 64
    assert report["totals"]["split_bits_per_binarized_weight"]["codebooks"] == pytest.approx(payload / (9 * kernels))


def test_entropy_format_decodes_same_kernel_ids():
    module, cfg = make_module("model=resnet20")
    skew_kernels(module)
    buf = export_module(module, cfg, fmt="entropy")
    packed = export_module(module, cfg, fmt="packed")
    _assert_same(module, buf)
    header, _ = split_file(buf)
    coded = [n for n, e in header["layers"].items() if e["storage"] == "entropy"]
    assert coded == [n for n, m in binary_layers(module.net).items() if m.weight.shape[2:] == (3, 3)]
    assert header["coded"]["streams"][0]["layers"] == coded and header["coded"]["streams"][0]["alphabet"] == 512
    loaded = load_bytes(buf)
    for name in coded:
        w = loaded.net.get_submodule(name).weight
        assert torch.equal(kernel_ids(w > 0), kernel_ids(binary_layers(module.net)[name].signs()))
    assert len(buf) < len(packed)
    assert report_bytes(buf)["totals"]["bits_per_binarized_weight"] < 1.0


def test_entropy_never_larger_than_packed():
    """Near-uniform kernels (random init): layers fall back to packed signs, so no loss."""
    module, cfg = make_module("model=resnet20")
    a = report_bytes(export_module(module, cfg, fmt="entropy"))["totals"]
    b = report_bytes(export_module(module, cfg, fmt="packed"))["totals"]
    assert a["data_bytes"] <= b["data_bytes"]


def test_bit_order_hand_packed():
    """A 1x1 binary conv's signs: element 8i+j is bit j of byte i (LSB first)."""
    module, cfg = make_module("model=resnet20", "model.backbone.shortcut=B")
    layer = binary_layers(module.net)["layer2.0.shortcut.0"]  # 32 x 16 x 1 x 1
    signs = torch.zeros(layer.weight.shape, dtype=torch.bool)
    flat = signs.view(-1)
    flat[[0, 2, 3, 8, 15, 17]] = True
    with torch.no_grad():
        layer.weight.copy_(torch.where(signs, 0.5, -0.5))
    header, data = split_file(export_module(module, cfg))
    sec = header["layers"]["layer2.0.shortcut.0"]["signs"]
    got = data[sec["offset"]:sec["offset"] + sec["nbytes"]]
    assert sec["nbytes"] == 32 * 16 // 8
    assert got[:3] == bytes([0b00001101, 0b10000001, 0b00000010]) and set(got[3:]) == {0}


def test_uint_packing_hand_example_and_loop():
    # 5 = 101b, 2 = 010b at 3 bits: stream 1,0,1, 0,1,0 -> byte 0b010101 = 21
    assert pack_uint(torch.tensor([5, 2]), 3).tolist() == [21]
    g = torch.Generator().manual_seed(0)
    for n in (1, 5, 9):
        v = torch.randint(0, 2 ** n, (37,), generator=g)
        packed = pack_uint(v, n)
        stream = [(int(x) >> b) & 1 for x in v for b in range(n)]  # direct: bit b of element i at i*n+b
        expect = [sum(bit << j for j, bit in enumerate(stream[i:i + 8])) for i in range(0, len(stream), 8)]
        assert packed.tolist() == expect
        assert torch.equal(unpack_uint(packed, n, 37), v)


def test_version1_elias_gamma_table_against_direct_code():
    counts = [0] * 16
    counts[1], counts[4], counts[9] = 1, 5, 2
    # bitmap: bits 1, 4, 9 -> bytes 0b00010010, 0b00000010; gamma: 1 -> "1", 5 -> "00101", 2 -> "010"
    stream = [1] + [0, 0, 1, 0, 1] + [0, 1, 0]
    gamma_bytes = [sum(b << j for j, b in enumerate(stream[i:i + 8])) for i in range(0, len(stream), 8)]
    table = bytes([0b00010010, 0b00000010] + gamma_bytes)
    assert E.decode_table(table, 16, 8).tolist() == counts
    with pytest.raises(PackedFileError, match="sum to"):
        E.decode_table(table, 16, 9)


def _coded_bits(symbols: np.ndarray, alphabet: int, prior: tuple[int, int]) -> tuple[int, np.ndarray]:
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    A.encode(coder, symbols, alphabet, prior)
    words = coder.get_compressed()
    decoder = constriction.stream.stack.AnsCoder(words)
    out, _ = A.decode(decoder, len(symbols), alphabet, prior)
    assert decoder.is_empty()
    return 32 * len(words), out


def test_adaptive_coder_round_trip_at_its_closed_form_cost():
    g = np.random.default_rng(0)
    p = np.exp(g.standard_normal(512) * 2)
    s = g.choice(512, 20000, p=p / p.sum())
    counts = np.bincount(s, minlength=512)
    for prior in ((1, 2), A.best_prior(counts)):
        bits, out = _coded_bits(s, 512, prior)
        assert np.array_equal(out, s)
        # chunked updates and the coder's flush cost a little against per-symbol updates
        assert A.dirichlet_bits(counts, prior) <= bits <= A.dirichlet_bits(counts, prior) * 1.002 + 64
    q = counts[counts > 0] / counts.sum()
    h = float(-(q * np.log2(q)).sum())
    # no table: the cost over N H is about (m - 1)/2 log2 N bits for m used symbols
    assert A.dirichlet_bits(counts, A.best_prior(counts)) - 20000 * h < 255.5 * math.log2(20000)


def test_dirichlet_bits_against_the_sequential_product():
    s = [3, 0, 3, 3, 1, 0, 3]
    for prior in ((1, 2), (1, 16)):
        a = prior[0] / prior[1]
        counts, bits = [0] * 5, 0.0
        for x in s:   # P(x | past) = (c_x + a) / (t + m a), one symbol at a time
            bits -= math.log2((counts[x] + a) / (sum(counts) + 5 * a))
            counts[x] += 1
        assert A.dirichlet_bits(np.array(counts), prior) == pytest.approx(bits)


def test_chunk_bounds():
    assert A.chunk_bounds(0) == [0]
    assert A.chunk_bounds(40) == [0, 16, 32, 40]
    b = A.chunk_bounds(10 ** 6)
    steps = np.diff(b)
    assert b[-1] == 10 ** 6 and steps.max() == A.MAX_CHUNK
    assert all(s == min(A.MAX_CHUNK, max(A.MIN_CHUNK, t >> A.CHUNK_SHIFT))
               for t, s in zip(b[:-2], steps[:-1], strict=True))


def test_codebook_coder_round_trip_and_below_one_subset_each():
    import constriction

    from qbn.export import codebook_coder as C

    g = np.random.default_rng(0)
    base = g.standard_normal(512)
    base = base + base[::-1]   # negation-symmetric preferences, as trained BWNs have
    books = [np.sort(np.argsort(-(base + 0.5 * g.standard_normal(512)))[:32]) for _ in range(12)] + [np.array([7])]
    coder = constriction.stream.stack.AnsCoder()
    C.encode(coder, books)
    bits = 32 * len(coder.get_compressed())
    decoder = constriction.stream.stack.AnsCoder(coder.get_compressed())
    out, info = C.decode(decoder, [len(b) for b in books])
    assert all(np.array_equal(a, b) for a, b in zip(out, books, strict=True)) and decoder.is_empty()
    assert abs(bits - sum(info)) <= 64   # the coder costs the information content, up to word rounding
    subset = (math.lgamma(513) - math.lgamma(33) - math.lgamma(481)) / math.log(2)
    assert bits < 12 * subset * 0.8   # overlapping codebooks cost well under log2 C(512, 32) each


def test_sorted_codebook_positions():
    from qbn.export.writer import sorted_codebook

    book = torch.tensor([300, 5, 511, 42])
    idx = torch.tensor([[0, 1], [3, 2]])
    order, pos = sorted_codebook(book, idx)
    assert order.tolist() == [5, 42, 300, 511]
    assert order[pos].tolist() == book[idx].reshape(-1).tolist()


def test_fold_bn_close_and_smaller():
    module, cfg = make_module("model=resnet20", "model.backbone.shortcut=B", "scaling=none")
    buf = export_module(module, cfg, fold_bn=True)
    loaded = load_bytes(buf)
    header, _ = split_file(buf)
    assert "layer2.0.shortcut.0" in header["folded"] and "conv1" in header["folded"]
    assert all("alpha" in e and "bias" in e for e in header["layers"].values())
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), module(X), rtol=1e-4, atol=1e-4)
    assert len(buf) < len(export_module(module, cfg))


def test_fp16_options():
    module, cfg = make_module("model=resnet20")
    a = export_module(module, cfg, alpha_dtype="fp16", fp_dtype="fp16")
    b = export_module(module, cfg)
    loaded = load_bytes(a)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), module(X), rtol=2e-2, atol=2e-2)
    ra, rb = report_bytes(a)["totals"], report_bytes(b)["totals"]
    assert ra["data_bytes"] < rb["data_bytes"]
    assert ra["bits_per_binarized_weight"] == rb["bits_per_binarized_weight"] == 1.0


def test_size_report_matches_file():
    module, cfg = make_module("model=resnet20")
    buf = export_module(module, cfg)
    t = report_bytes(buf)["totals"]
    assert t["computed_file_bytes"] == t["file_bytes"] == len(buf)
    n_binary = sum(m.weight.numel() for m in binary_layers(module.net).values())
    assert t["binarized_weights"] == n_binary
    n_values = sum(v.numel() for k, v in module.state_dict().items()
                   if not k.endswith("num_batches_tracked") and ".scaling." not in k)
    assert t["params"] == n_values and t["fp32_bytes"] == 4 * n_values
    assert t["compression"] == pytest.approx(4 * n_values / len(buf))
    assert t["bits_per_binarized_weight"] == pytest.approx(
        sum(math.ceil(m.weight.numel() / 8) * 8 for m in binary_layers(module.net).values()) / n_binary)


def test_shared_codebook_stored_once():
    module, cfg = make_module("model=resnet20")
    layers = quantizable_layers(module.net)
    quantize(layers, {k: 4 for k in layers}, shared=True)
    buf = export_module(module, cfg)
    _assert_same(module, buf)
    header, _ = split_file(buf)
    assert {e["codebook"] for e in header["layers"].values()} == {0} and header["coded"]["codebooks"] == [16]
    kernels = sum(m.weight.shape[0] * m.weight.shape[1] for m in layers.values())
    bits = sum(math.ceil(4 * m.weight.shape[0] * m.weight.shape[1] / 8) * 8 for m in layers.values())
    bits += 8 * header["coded"]["payload"]["nbytes"]
    assert report_bytes(buf)["totals"]["bits_per_binarized_weight"] == pytest.approx(bits / (9 * kernels))


def test_version1_file_still_loads_bit_exactly():
    """tests/fixtures/model_v1.qbn was written by the version-1 writer (resnet20 on the synthetic
    shapes, skewed kernels, QBN n=3 and n=5 layers, --format entropy: codebook, entropy-coded kernel
    ids and indices). Its decoded weights must stay bit for bit those the version-1 loader built
    (SHA-256 of the state dict recorded then: decoding is exact). Its logits match those recorded
    then up to float rounding, with the same top-1 class: they come out of convolutions whose
    kernels oneDNN picks per CPU, so another x86-64 machine differs in the last bits."""
    import hashlib
    import json
    from pathlib import Path

    from qbn.export import load

    fixtures = Path(__file__).parent / "fixtures"
    expected = json.loads((fixtures / "model_v1.json").read_text())
    model = load(fixtures / "model_v1.qbn", channels_last=False)  # in the memory format its logits were recorded in
    assert model.header["layers"]["layer1.0.conv1"]["storage"] == "codebook"
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.contiguous().numpy().tobytes())
    assert digest.hexdigest() == expected["state_sha256"]
    with torch.no_grad():
        logits = model(torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1)))
    recorded = torch.tensor(expected["logits"])
    torch.testing.assert_close(logits, recorded, rtol=1e-3, atol=1e-4)
    assert torch.equal(logits.argmax(1), recorded.argmax(1))


@pytest.mark.parametrize("fmt", ["packed", "entropy"])
def test_whole_file_split_adds_up_and_index_entropy(fmt):
    """The split covers every byte of the file; a QBN layer's H is the entropy of its indices."""
    module, cfg = make_module("model=resnet20", "model.backbone.shortcut=B")
    skew_kernels(module)
    layers = quantizable_layers(module.net)
    quantize({k: m for i, (k, m) in enumerate(layers.items()) if i % 2}, {k: 4 for i, k in enumerate(layers) if i % 2})
    buf = export_module(module, cfg, fmt=fmt)
    report = report_bytes(buf)
    t = report["totals"]
    assert sum(t["split_bits_per_binarized_weight"].values()) * t["binarized_weights"] == pytest.approx(8 * len(buf))
    assert t["file_bits_per_binarized_weight"] * t["binarized_weights"] == pytest.approx(8 * len(buf))
    rows = {r["layer"]: r for r in report["rows"]}
    binary = sum(rows[n]["bits_per_weight"] * math.prod(rows[n]["shape"]) for n in binary_layers(module.net))
    assert binary == pytest.approx(t["bits_per_binarized_weight"] * t["binarized_weights"])
    for name, layer in layers.items():
        symbols = layer.codebook_indices() if layer.codebook is not None else kernel_ids(layer.signs())
        counts = np.bincount(symbols.reshape(-1).numpy())
        p = counts[counts > 0] / counts.sum()
        assert rows[name]["entropy"] == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert rows["layer2.0.shortcut.0"]["entropy"] is None   # 1x1: no kernels
