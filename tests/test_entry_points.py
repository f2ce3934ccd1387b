"""Fast integration tests of the entry points that otherwise run only under -m slow: QBN fine-tuning
from a trained BWN (qbn.train; the suite's shared digits run), then python -m qbn.kernels and
python -m qbn.report on its run directory (their main(), in-process, a run of a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qbn.kernels.__main__ import main as kernels_main
from qbn.report import main as report_main
from qbn.testing.runs import TINY, check_qbn_run, compose_run
from qbn.train import train

QUICK = [*TINY, "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def _train(run_dir: Path, *overrides: str) -> dict:
    """qbn.train in-process, saving .hydra/config.yaml as the Hydra app would."""
    return train(compose_run(run_dir, [*QUICK, *overrides]))


@pytest.mark.slow  # a QBN fine-tune and its CLIs (about 20 s); CI's slow step runs it
def test_qbn_finetune_then_kernels_and_report(shared_run_dir, tmp_path, capsys):
    run_dir = tmp_path / "qbn"   # from the suite's shared BWN (conftest: the golden digits run)
    summary = _train(run_dir, "dataset=digits", "qbn.bits=4", f"qbn.from_ckpt={shared_run_dir}")
    stats = check_qbn_run(run_dir, summary, bits=4)

    # python -m qbn.kernels reads the QBN checkpoint (quantized signs) the same way, and draws
    out = tmp_path / "offline"
    assert kernels_main([str(run_dir), "--out", str(out)]) == 0
    assert "entropy" in capsys.readouterr().out
    offline = json.loads((out / "kernels.json").read_text())
    assert offline["overall"]["histogram"] == stats["overall"]["histogram"]
    assert offline["figures"] and all((out / f).stat().st_size > 0 for f in offline["figures"])
    assert kernels_main([str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.startswith("qbn: ")

    # python -m qbn.report rebuilds report.md and the figures from the run directory alone
    assert report_main([str(run_dir)]) == 0
    assert "wrote" in capsys.readouterr().out
    report = (run_dir / "report.md").read_text()
    assert f"{100 * summary['test/acc']:.2f}" in report and "QBN" in report
    assert report_main([]) == 2
