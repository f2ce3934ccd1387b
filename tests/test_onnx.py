"""python -m qbn.export --format onnx: a checked, standard ONNX model whose onnxruntime predictions are qbn's."""

from __future__ import annotations

import sys

import pytest
import torch

from qbn.checkpoint import model_from_checkpoint
from qbn.data import DigitsDataModule
from qbn.export.__main__ import main as export_main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    """1,000 inputs: every digits test image, then uniform random images."""
    _, _, x, _ = DigitsDataModule.load_arrays(None)
    images = x.float() / 255
    more = torch.rand(1000 - images.shape[0], *images.shape[1:], generator=torch.Generator().manual_seed(0))
    return torch.cat([images, more])


@pytest.fixture
def digits_run(digits_run_copy, inputs):
    """A copy of the suite's shared digits run (conftest: a BWN with QBN codebooks on its layers), and the inputs."""
    return digits_run_copy, inputs


def _runtime_logits(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def _assert_same_predictions(path, run_dir, x: torch.Tensor) -> None:
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    module, _ = model_from_checkpoint(run_dir, require_binary=False)
    with torch.no_grad():
        expected = module.eval()(x)
    got = _runtime_logits(path, x)
    assert x.shape[0] == 1000 and got.shape == expected.shape
    assert torch.equal(got.argmax(dim=1), expected.argmax(dim=1))
    assert (got - expected).abs().max().item() <= 1e-4


def test_onnx_from_a_run_directory_predicts_what_qbn_predicts(digits_run, capsys):
    run_dir, x = digits_run
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    assert export_main([str(run_dir), "--format", "onnx"]) == 0
    out = run_dir / "model.onnx"
    assert f"wrote {out}" in capsys.readouterr().out
    assert {p.name for p in run_dir.iterdir()} == {*before, "model.onnx"}  # nothing else written or left behind
    assert all(run_dir.joinpath(n).stat().st_mtime_ns == t for n, t in before.items())
    _assert_same_predictions(out, run_dir, x)
    # weights folded: no BatchNorm left, every conv's weight an initializer
    graph = onnx.load(str(out)).graph
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]
    assert [n for n in graph.node if n.op_type == "Conv"]


def test_onnx_from_a_packed_file_predicts_what_qbn_predicts(digits_run, tmp_path):
    run_dir, x = digits_run
    folder = tmp_path / "out"
    folder.mkdir()
    packed = folder / "model.qbn"
    assert export_main([str(run_dir), "--out", str(packed)]) == 0
    assert export_main([str(packed), "--format", "onnx"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.qbn"]
    _assert_same_predictions(folder / "model.onnx", run_dir, x)


def test_onnx_without_its_packages_is_one_line(digits_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    folder = tmp_path / "out"
    folder.mkdir()
    assert export_main([str(digits_run[0]), "--format", "onnx", "--out", str(folder / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qbn: ") and err.count("\n") == 1 and "qbn[onnx]" in err and not list(folder.iterdir())
