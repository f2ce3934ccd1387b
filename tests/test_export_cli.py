"""Entry points: python -m qbn.export (write, --eval) and python -m qbn.summary on a run directory
made like a real run's (.hydra/config.yaml + checkpoints/last.ckpt)."""

from __future__ import annotations

import json

import pytest
import torch

from qbn.export import export, load
from qbn.export.__main__ import main as export_main
from qbn.summary import main as summary_main
from qbn.testing.export import make_module
from qbn.testing.rundirs import one_line
from qbn.testing.runs import FASHION_MNIST_AVAILABLE, TINY, run_cli, write_run_dir


@pytest.fixture
def run_dir(tmp_path):
    module, cfg = make_module("model=resnet20")
    run = write_run_dir(tmp_path / "run", cfg, module)
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    return run, module


def _accuracy(model, overrides):
    import hydra

    from qbn.export.evaluate import compose_dataset
    dm = hydra.utils.instantiate(compose_dataset(overrides).dataset, _convert_="all")
    dm.setup("test")
    correct = total = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            correct += int((model(x).argmax(1) == y).sum())
            total += y.numel()
    return correct / total


def test_export_eval_summary_in_process(run_dir, capsys):
    run, module = run_dir
    assert export_main([str(run)]) == 0
    assert "model.qbn" in capsys.readouterr().out
    path = run / "model.qbn"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["export/file_bytes"] == path.stat().st_size
    assert summary["export/bits_per_binarized_weight"] == 1.0
    overrides = ["dataset=synthetic"]
    assert export_main(["--eval", str(path), *overrides]) == 0
    out = capsys.readouterr().out
    acc = _accuracy(module.eval(), overrides)
    assert f"test accuracy {100 * acc:.2f} %" in out
    assert summary_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "bits/weight" in out and f"{path.stat().st_size:,}" in out and "compression ratio" in out
    assert "whole file:" in out and "  codebooks       0.0000" in out and "  header" in out
    assert summary_main([str(run), "--format", "entropy"]) == 0
    assert "checkpoint file" in capsys.readouterr().out


def test_export_options_and_out(run_dir, tmp_path):
    run, module = run_dir
    out = export(run / "checkpoints" / "last.ckpt", tmp_path / "x" / "m.qbn", fmt="entropy", alpha_dtype="fp16",
                 fp_dtype="fp16", fold_bn=True)
    m = load(out)
    assert m.header["options"] == {"format": "entropy", "alpha_dtype": "float16", "fp_dtype": "float16",
                                   "fold_bn": True}


def test_user_errors_are_one_line(tmp_path, run_dir, capsys):
    run, _ = run_dir
    assert export_main([str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.startswith("qbn: ")
    export(run)
    assert export_main(["--eval", str(run / "model.qbn"), "dataset=digits", "dataset.num_classes=3"]) == 1
    assert "num_classes" in capsys.readouterr().err
    assert export_main(["--eval", str(run / "model.qbn"), "dataset=nope"]) == 1
    assert capsys.readouterr().err.startswith("qbn: ")
    assert summary_main([str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.startswith("qbn: ")


@pytest.mark.slow
def test_real_entry_points_after_training(tmp_path):
    """qbn.train on synthetic data, then the three entry points as a user runs them."""
    run = tmp_path / "trained"
    r = run_cli("qbn.train", *TINY, f"hydra.run.dir={run}")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("qbn.export", str(run), "--format", "entropy")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("qbn.export", "--eval", str(run / "model.qbn"), "dataset=synthetic")
    assert r.returncode == 0, r.stderr[-2000:]
    acc = float(r.stdout.split("test accuracy ")[1].split(" %")[0])
    summary = json.loads((run / "summary.json").read_text())
    assert acc == pytest.approx(100 * summary["test/acc"], abs=0.006)
    r = run_cli("qbn.summary", str(run / "model.qbn"))
    assert r.returncode == 0 and "compression ratio" in r.stdout


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST_AVAILABLE, reason="Fashion-MNIST files not present")
def test_eval_fashion_mnist_matches_checkpoint(tmp_path):
    run = tmp_path / "fm"
    r = run_cli("qbn.train", "dataset=fashion_mnist", "dataset.train_subset=512", "dataset.test_subset=512",
                "trainer.max_epochs=1", "callbacks.progress=null", "report=false", f"hydra.run.dir={run}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert run_cli("qbn.export", str(run)).returncode == 0
    r = run_cli("qbn.export", "--eval", str(run / "model.qbn"), "dataset=fashion_mnist", "dataset.test_subset=512")
    acc = float(r.stdout.split("test accuracy ")[1].split(" %")[0])
    assert acc == pytest.approx(100 * json.loads((run / "summary.json").read_text())["test/acc"], abs=0.006)


@pytest.mark.parametrize("option", ["dataset.test_subset=abc", "dataset.eval_batch_size=0", "binary.enabled=maybe"])
def test_eval_checks_options_as_train_does(run_dir, capsys, option):
    """--eval composes qbn.train's config: a typed option is checked the same way, one line naming it
    (dataset.test_subset=abc was a TypeError traceback from the data module)."""
    run, _ = run_dir
    path = export(run)
    assert export_main(["--eval", str(path), "dataset=digits", option]) == 1
    one_line(capsys.readouterr().err, option.split("=")[0])
