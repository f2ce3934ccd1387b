"""The loader trusts nothing: every malformed file is one clear PackedFileError naming the
problem (never a crash, hang or huge allocation). Hand-made cases, the corpus of mutations in
tests/corpus/export/, and a hypothesis fuzz over mutated real files."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qbn.errors import QbnError
from qbn.export import PackedFileError, load_bytes
from qbn.export.container import MAX_HEADER_BYTES, PREFIX_BYTES
from qbn.testing.export import assemble_verbatim, reassemble, seed_file, split_file

CORPUS = Path(__file__).parent / "corpus" / "export"


@pytest.fixture(scope="module")
def seed() -> bytes:
    return seed_file()


@pytest.fixture(scope="module")
def seeds(seed) -> dict[str, bytes]:
    """The corpus's seed files by name: packed (default), entropy, v1."""
    return {"packed": seed, "entropy": seed_file("entropy"), "v1": seed_file("v1")}


def _expect(buf: bytes, message: str) -> None:
    with pytest.raises(PackedFileError, match=message):
        load_bytes(buf)


def _edit(buf: bytes, fn) -> bytes:
    header, data = split_file(buf)
    header = copy.deepcopy(header)
    out = fn(header, data)
    return reassemble(header, data if out is None else out, buf)


def test_seed_file_loads(seed):
    assert load_bytes(seed).header["layers"]["layer1.0.conv1"]["storage"] == "codebook"


def test_wrong_magic(seed):
    _expect(b"PK\x03\x04" + seed[4:], "wrong magic")


def test_truncated(seed):
    _expect(seed[:20], "truncated")
    _expect(seed[:PREFIX_BYTES + 10], "truncated")
    _expect(seed[:-1], "bad checksum")


def test_truncated_with_checksum_fixed(seed):
    header, data = split_file(seed)
    _expect(reassemble(header, data[:-100], seed), "offset past the end")


def test_bad_checksum(seed):
    flipped = bytearray(seed)
    flipped[-5] ^= 0x10
    _expect(bytes(flipped), "bad checksum")


def test_unsupported_version(seed):
    _expect(seed[:8] + struct.pack("<I", 99) + seed[12:], "unsupported format version 99")


def test_oversized_header(seed):
    _expect(seed[:12] + struct.pack("<I", MAX_HEADER_BYTES + 1) + seed[16:], "header too large")


def test_offset_past_end(seed):
    def f(h, d):
        h["layers"]["layer2.0.conv1"]["signs"]["offset"] = len(d) + 4096
    _expect(_edit(seed, f), "offset past the end")


def test_index_beyond_codebook(seed):
    """A well-coded codebook of 5 ids: its 3-bit indices can still say 5..7."""
    import numpy as np

    from qbn.export import coding

    def f(h, d):
        words = coding.encode([np.array([0, 7, 56, 448, 511])], [])
        h["coded"]["codebooks"] = [5]
        h["coded"]["payload"] = {"dtype": "uint32", "shape": [len(words)], "offset": len(d), "nbytes": 4 * len(words)}
        idx = h["layers"]["layer1.0.conv1"]["indices"]
        return d[:idx["offset"]] + b"\xff" * idx["nbytes"] + d[idx["offset"] + idx["nbytes"]:] + words.tobytes()
    _expect(_edit(seed, f), "index >= codebook size")


def test_shape_disagrees_with_model(seed):
    def f(h, d):
        h["layers"]["layer2.0.conv1"]["shape"] = [32, 8, 3, 3]
    _expect(_edit(seed, f), "shape disagrees")


def test_shape_disagrees_with_size(seed):
    def f(h, d):
        h["layers"]["layer2.0.conv1"]["signs"]["shape"] = [32, 16, 3, 4]
    _expect(_edit(seed, f), "shape disagrees")


def test_huge_shape_is_refused_before_allocating(seed):
    def f(h, d):
        h["tensors"]["net.fc.weight"]["shape"] = [1 << 24, 1 << 24]
    _expect(_edit(seed, f), "limit")


def test_huge_model_is_refused(seed):
    def f(h, d):
        h["model"]["num_classes"] = 1 << 40
    _expect(_edit(seed, f), "num_classes")


def test_backbone_must_be_a_qbn_model(seed):
    def f(h, d):
        h["model"]["backbone"]["_target_"] = "os.system"
    _expect(_edit(seed, f), "not one of qbn.models")

    def g(h, d):
        h["model"]["backbone"]["__class__"] = "x"
    _expect(_edit(seed, g), "not allowed")


def test_missing_tensor(seed):
    def f(h, d):
        del h["tensors"]["net.layer1.0.bn1.running_var"]
    _expect(_edit(seed, f), "lacks 1 tensors")


def test_corrupt_entropy_payload(seeds):
    for name, where in (("entropy", ("coded", "payload")), ("v1", ("layers", "layer2.0.conv1", "entropy", "payload"))):
        header, data = split_file(seeds[name])
        sec = header
        for key in where:
            sec = sec[key]
        data = bytearray(data)
        data[sec["offset"] + 8] ^= 0xFF
        _expect(reassemble(header, bytes(data), seeds[name]), "corrupt")


def _with_header_bytes(seed: bytes, hbytes: bytes) -> bytes:
    import hashlib

    hlen = struct.unpack_from("<I", seed, 12)[0]
    body = hbytes + seed[PREFIX_BYTES + hlen:]
    return seed[:12] + struct.pack("<I", len(hbytes)) + hashlib.sha256(body).digest() + body


def test_not_json_header(seed):
    import zlib

    _expect(_with_header_bytes(seed, b"[" * 100), "unreadable header")
    _expect(_with_header_bytes(seed, zlib.compress(b"[" * 100000)), "unreadable header")
    _expect(_with_header_bytes(seed, zlib.compress(b"[1]")), "not an object")


def test_header_bomb_is_bounded(seed):
    import zlib

    bomb = zlib.compress(b" " * (MAX_HEADER_BYTES + 10), 9)  # 4 MiB of spaces in a few kB
    _expect(_with_header_bytes(seed, bomb), "header too large")


def test_cli_error_is_one_line(tmp_path, capsys):
    from qbn.export.__main__ import main

    bad = tmp_path / "bad.qbn"
    bad.write_bytes(b"\x89QBN\r\n\x1a\n" + b"\0" * 10)
    assert main(["--eval", str(bad), "dataset=synthetic"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qbn: truncated file") and "\n" not in err


# ---- corpus and fuzz ----------------------------------------------------------------------

def apply_case(seed: bytes, case: dict) -> bytes:
    """A corpus case: header edits (checksum refixed; 'verbatim' keeps the header's data_bytes),
    data patches, raw byte patches (no checksum fix), truncation."""
    header, data = split_file(seed)
    data = bytearray(data)
    for path, value in case.get("header", []):
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    for offset, value in case.get("data", []):
        data[offset % len(data)] = value
    if case.get("verbatim"):
        buf = bytearray(assemble_verbatim(header, bytes(data), seed))
    else:
        buf = bytearray(reassemble(header, bytes(data), seed) if case.get("fix_checksum", True) else seed)
    for offset, value in case.get("raw", []):
        buf[offset % len(buf)] = value
    if case.get("truncate") is not None:
        buf = buf[:case["truncate"]]
    return bytes(buf)


def check_loads_or_refuses(buf: bytes) -> None:
    try:
        model = load_bytes(buf)
    except PackedFileError:
        return
    with torch.no_grad():  # what loads must also run
        model(torch.rand(1, 1, 16, 16))


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda p: p.stem)
def test_corpus(seeds, path):
    case = json.loads(path.read_text())
    buf = apply_case(seeds[case.get("seed", "packed")], case)
    if case.get("expect"):
        _expect(buf, case["expect"])
    else:
        check_loads_or_refuses(buf)


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, (*prefix, k))
    elif isinstance(node, list) and node and all(isinstance(x, int) for x in node):
        for i in range(len(node)):
            yield (*prefix, i)
    yield prefix


json_values = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63), st.integers(-4, 70000),
                        st.text(max_size=12), st.lists(st.integers(-3, 1 << 20), max_size=5),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _fuzz_header(seed: bytes, data) -> None:
    header, body = split_file(seed)
    paths = [p for p in _leaf_paths(header) if p and p[0] not in ("source", "order")]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(json_values)
    check_loads_or_refuses(apply_case(seed, {"header": [[list(path), value]]}))


def _fuzz_data(seed: bytes, data) -> None:
    patches = data.draw(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8))
    check_loads_or_refuses(apply_case(seed, {"data": [list(p) for p in patches]}))


def _fuzz_raw(seed: bytes, data) -> None:
    offset = data.draw(st.integers(0, len(seed) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != seed[offset]))
    truncate = data.draw(st.one_of(st.none(), st.integers(0, len(seed) - 1)))
    with pytest.raises(QbnError):  # any changed byte or lost tail is caught (checksum or earlier)
        load_bytes(apply_case(seed, {"fix_checksum": False, "raw": [[offset, value]], "truncate": truncate}))


FAST = settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
# each example of FEW loads a model
FEW = settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@FAST
@given(data=st.data())
def test_fuzz_header(seed, data):
    _fuzz_header(seed, data)


@FEW
@given(data=st.data())
def test_fuzz_data(seed, data):
    _fuzz_data(seed, data)


@FAST
@given(data=st.data())
def test_fuzz_raw(seed, data):
    _fuzz_raw(seed, data)


@FEW
@given(data=st.data())
def test_fuzz_header_coded_and_v1(seeds, data):
    """Header values of the entropy seed (coded streams, priors, codebook sizes) and the v1 seed."""
    _fuzz_header(seeds[data.draw(st.sampled_from(("entropy", "v1")))], data)


@FEW
@given(data=st.data())
def test_fuzz_data_coded_and_v1(seeds, data):
    _fuzz_data(seeds[data.draw(st.sampled_from(("entropy", "v1")))], data)


@pytest.mark.slow
@LONG
@given(data=st.data())
def test_fuzz_header_long(seed, data):
    _fuzz_header(seed, data)


@pytest.mark.slow
@LONG
@given(data=st.data())
def test_fuzz_data_long(seed, data):
    _fuzz_data(seed, data)


@pytest.mark.slow
@LONG
@given(data=st.data())
def test_fuzz_coded_long(seeds, data):
    name = data.draw(st.sampled_from(("entropy", "v1")))
    (_fuzz_header if data.draw(st.booleans()) else _fuzz_data)(seeds[name], data)


def test_huge_int_literal_and_bad_fold(seed):
    _expect(_with_header_bytes(seed, __import__("zlib").compress(b'{"a": ' + b"9" * 5000 + b"}")), "unreadable header")

    def f(h, d):
        h["folded"] = {"conv1": ["bn1"]}
    _expect(_edit(seed, f), "folded pair")


def test_summary_of_bad_file_is_one_line(seed, tmp_path, capsys):
    from qbn.summary import main

    def f(h, d):
        h["layers"]["layer2.0.conv1"]["storage"] = 7
    bad = tmp_path / "bad.qbn"
    bad.write_bytes(_edit(seed, f))
    assert main([str(bad)]) == 1
    assert capsys.readouterr().err.startswith("qbn: bad header")
