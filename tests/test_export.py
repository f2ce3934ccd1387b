"""Packed model file: round trips for every backbone and scaling, bit order against hand-packed
bytes, entropy coding, BN folding, sizes (docs/format.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qbn.binary import binary_layers
from qbn.export import PackedFileError, export_module, load_bytes, report_bytes
from qbn.export import entropy as E
from qbn.export.container import pack_uint, read_uint, unpack_uint
from qbn.export.loader import decode_layer
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


@pytest.mark.parametrize("model", ["resnet20", "resnet32", "resnet56", "vgg_small",
                                   "resnet18",
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
    layer.fix_signs(torch.rand(layer.weight.shape, generator=g) > 0.5, torch.rand(layer.weight.shape, generator=g) > 0.5)
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
    for name, layer in layers.items():
        e = header["layers"][name]
        assert e["storage"] in (("codebook",) if fmt == "packed" else ("codebook", "entropy"))
        assert e["codebook"]["dtype"] == "uint9" and e["codebook"]["shape"] == [32]
        assert read_uint(e["codebook"], memoryview(data), "codebook", 9).tolist() == layer.codebook.tolist()
        if e["storage"] == "codebook":
            assert e["indices"]["dtype"] == "uint5" and e["indices"]["nbytes"] == math.ceil(5 * e["shape"][0] * e["shape"][1] / 8)
            assert torch.equal(read_uint(e["indices"], memoryview(data), "indices", 5), layer.codebook_indices())
    if fmt == "entropy":
        assert any(e["storage"] == "entropy" for e in header["layers"].values())


def test_qbn_bits_per_weight():
    """n = 5: 5/9 bit per weight plus the codebook (9 * 32 bits per layer), exactly."""
    module, cfg = make_module("model=resnet20")
    layers = quantizable_layers(module.net)
    quantize(layers, {k: 5 for k in layers})
    report = report_bytes(export_module(module, cfg))
    kernels = sum(m.weight.shape[0] * m.weight.shape[1] for m in layers.values())
    expected_bits = sum(math.ceil(5 * m.weight.shape[0] * m.weight.shape[1] / 8) * 8 + math.ceil(9 * 32 / 8) * 8
                        for m in layers.values())
    assert report["totals"]["bits_per_binarized_weight"] == pytest.approx(expected_bits / (9 * kernels))
    assert 5 / 9 < report["totals"]["bits_per_binarized_weight"] < 5 / 9 + 0.05


def test_entropy_format_decodes_same_kernel_ids():
    module, cfg = make_module("model=resnet20")
    skew_kernels(module)
    buf = export_module(module, cfg, fmt="entropy")
    packed = export_module(module, cfg, fmt="packed")
    _assert_same(module, buf)
    header, data = split_file(buf)
    coded = [n for n, e in header["layers"].items() if e["storage"] == "entropy"]
    assert coded, "a skewed kernel distribution must be entropy coded"
    body = memoryview(data)
    for name in coded:
        layer = binary_layers(module.net)[name]
        parts = decode_layer(name, header["layers"][name], body, list(layer.weight.shape))
        assert torch.equal(kernel_ids(parts["b"]), kernel_ids(layer.signs()))
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


def test_elias_gamma_table_against_direct_code():
    counts = np.zeros(16, dtype=np.int64)
    counts[[1, 4, 9]] = [1, 5, 2]
    table = E.encode_table(counts)
    # bitmap: bits 1, 4, 9 -> bytes 0b00010010, 0b00000010; gamma: 1 -> "1", 5 -> "00101", 2 -> "010"
    stream = [1] + [0, 0, 1, 0, 1] + [0, 1, 0]
    expect_stream = [sum(b << j for j, b in enumerate(stream[i:i + 8])) for i in range(0, len(stream), 8)]
    assert list(table) == [0b00010010, 0b00000010] + expect_stream
    assert E.decode_table(table, 16, 8).tolist() == counts.tolist()
    with pytest.raises(PackedFileError, match="sum to"):
        E.decode_table(table, 16, 9)


def test_entropy_coder_near_empirical_entropy():
    g = torch.Generator().manual_seed(0)
    s = torch.multinomial(torch.softmax(torch.randn(512, generator=g) * 2, 0), 20000, replacement=True, generator=g)
    table, words = E.encode(s, 512)
    assert torch.equal(E.decode(table, words, 512, s.numel()), s)
    h = E.empirical_entropy(s, 512)
    counts = np.bincount(s.numpy(), minlength=512)
    p = counts[counts > 0] / counts.sum()
    assert h == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert words.nbytes * 8 <= h * s.numel() * 1.01 + 64


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
    offsets = {(e["codebook"]["offset"], e["codebook"]["nbytes"]) for e in header["layers"].values()}
    assert len(offsets) == 1
    kernels = sum(m.weight.shape[0] * m.weight.shape[1] for m in layers.values())
    bits = sum(math.ceil(4 * m.weight.shape[0] * m.weight.shape[1] / 8) * 8 for m in layers.values()) + 8 * math.ceil(16 * 9 / 8)
    assert report_bytes(buf)["totals"]["bits_per_binarized_weight"] == pytest.approx(bits / (9 * kernels))


def test_version1_file_still_loads_bit_exactly():
    """tests/fixtures/model_v1.qbn was written by the version-1 writer (resnet20 on the synthetic
    shapes, skewed kernels, QBN n=3 and n=5 layers, --format entropy: codebook, entropy-coded kernel
    ids and indices). Its decoded weights must stay bit for bit those the version-1 loader built
    (SHA-256 of the state dict recorded then), and its logits those recorded then."""
    import hashlib
    import json
    from pathlib import Path

    from qbn.export import load

    fixtures = Path(__file__).parent / "fixtures"
    expected = json.loads((fixtures / "model_v1.json").read_text())
    model = load(fixtures / "model_v1.qbn")
    assert model.header["layers"]["layer1.0.conv1"]["storage"] == "codebook"
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.contiguous().numpy().tobytes())
    assert digest.hexdigest() == expected["state_sha256"]
    with torch.no_grad():
        logits = model(torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=1e-5, atol=0)
