"""W&B without an account: runs go offline by themselves, never prompt, and close after each job."""

from __future__ import annotations

from qbn.build import _wandb_mode
from qbn.testing.runs import TINY
from qbn.train import train


def test_mode_auto(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert _wandb_mode("auto") == "online"
    assert _wandb_mode("disabled") == "disabled"


def test_wandb_run_goes_offline_and_finishes(cfg_factory, monkeypatch, tmp_path):
    import wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    run_dir = tmp_path / "run"
    summary = train(cfg_factory(*TINY, "logger=wandb", run_dir=run_dir))
    assert summary["status"] == "completed"
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].rglob("*.wandb"))
    assert wandb.run is None  # finished, so the next job of a sweep starts its own run
