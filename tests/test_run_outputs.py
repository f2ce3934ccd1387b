"""What a run directory holds is declared (qbn.run_outputs): a real run with every instrument on
holds exactly the entries its writers declare, both ways, and every writer conf/ can attach
declares what it writes."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_object

import qbn
from qbn.config import CONFIG_DIR
from qbn.export import export
from qbn.export.onnx import export_onnx
from qbn.loggers import WANDB_WRITES
from qbn.run_outputs import RUN_OUTPUTS, WRITERS, may_write, writes
from qbn.rundir import RunDir, read_summary
from qbn.testing.runs import compose_cfg
from qbn.train import train

from .conftest import DIGITS_RUN

BEFORE_DERIVED = (".hydra", "checkpoints", "signs", "figures", "wandb", "summary.json", "summary.json.damaged",
                  "metrics.csv", "metrics.csv.old", "signs.json", "kernels.json", "report.md", "error.txt",
                  "model.qbn", "model.onnx")   # the hand list RUN_OUTPUTS was before it was derived


def _check_declared(run: RunDir, wandb: bool) -> None:
    """A completed run with every instrument on (conftest.DIGITS_RUN: the default callbacks with kernel
    figures, QBN by qbn.bits, a rewinding trunk's points, the report), then qbn.export's default
    outputs, holds exactly the entries its writers declare, both ways."""
    export(run.root)          # qbn.export's default outputs land in the run directory too
    export_onnx(run.root)
    present = {p.name for p in run.root.iterdir()}
    # every entry present is declared ...
    assert present - set(RUN_OUTPUTS) == set()
    # ... and every entry an enabled writer declares is present (ApplyRewind and FreezeSigns, not on
    # here, declare none); W&B's only when it is on
    expected = {*RunDir.CORE, *(name for w in WRITERS for name in writes(w)), *(WANDB_WRITES if wandb else ())}
    assert expected - present == set()
    assert {*RunDir.CORE_MAY, *(name for w in WRITERS for name in may_write(w))} & present == set()  # nothing failed
    assert run.last_ckpt.is_file() and run.init_ckpt.is_file() and run.last_flip.is_file()


def test_a_run_with_every_instrument_holds_exactly_what_is_declared(digits_run_copy):
    assert read_summary(digits_run_copy)["qbn"]["bits"] == 4   # the shared run has every instrument on
    _check_declared(RunDir(digits_run_copy), wandb=False)


@pytest.mark.slow  # importing wandb and an offline run take tens of seconds
def test_a_wandb_run_with_every_instrument_holds_exactly_what_is_declared(tmp_path):
    run = RunDir(tmp_path / "run")
    summary = train(compose_cfg(run.root, [*DIGITS_RUN, "trainer.limit_train_batches=4", "trainer.limit_val_batches=2",
                                           "logger=wandb"]))
    assert summary["status"] == "completed" and summary["qbn"]["bits"] == 4
    _check_declared(run, wandb=True)


def test_overwrite_clears_at_least_what_it_cleared_before_the_list_was_derived():
    assert set(BEFORE_DERIVED) <= set(RUN_OUTPUTS)
    assert len(RUN_OUTPUTS) == len(set(RUN_OUTPUTS))


def _targets(node):
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)


def test_every_writer_conf_attaches_is_declared():
    """A callback in conf/ that is given the run directory (run_dir, or dirpath for checkpoints)
    writes there: it must declare what (writes) and be one of WRITERS, or overwrite=true would
    leave its files behind and the run-directory test above would not know them."""
    found = {}
    for path in [*(CONFIG_DIR / "callbacks").glob("*.yaml"), *(CONFIG_DIR / "rewind").glob("*.yaml")]:
        for target in _targets(yaml.safe_load(path.read_text()) or {}):
            found[target] = get_object(target)
    writers = {t: obj for t, obj in found.items()
               if {"run_dir", "dirpath"} & set(inspect.signature(obj).parameters)}
    assert {"qbn.callbacks.sign_snapshots.SignSnapshots", "qbn.rewind.callbacks.RewindPoints",
            "qbn.callbacks.run_checkpoint.RunCheckpoint"} <= set(writers)
    for target, obj in writers.items():
        assert obj in WRITERS, f"{target} takes the run directory but is not in qbn.run_outputs.WRITERS"
        assert "writes" in vars(obj), f"{target} does not declare `writes`"
        assert set(writes(obj)) <= set(RUN_OUTPUTS)


def test_no_module_but_the_run_directory_class_spells_a_run_directory_name():
    """Every path of a run directory is built by qbn.rundir.RunDir: no other module of qbn holds a
    string that is one of its entries' names (the words signs, figures and wandb, which name other
    things too, are left out), and none mentions last.ckpt even in prose."""
    names = {RunDir.HYDRA, RunDir.CHECKPOINTS, RunDir.SUMMARY, RunDir.DAMAGED_SUMMARY, RunDir.ERROR, RunDir.METRICS,
             RunDir.OLD_METRICS, RunDir.SIGNS_JSON, RunDir.KERNELS_JSON, RunDir.REPORT, RunDir.PACKED, RunDir.ONNX,
             RunDir.LAST_CKPT, RunDir.LAST_FLIP}
    package = Path(qbn.__file__).parent
    spelt = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "rundir.py":
            continue
        text = path.read_text(encoding="utf-8")
        spelt += [f"{path.relative_to(package)}:{node.lineno}: {node.value!r}" for node in ast.walk(ast.parse(text))
                  if isinstance(node, ast.Constant) and node.value in names]
        spelt += [f"{path.relative_to(package)}: mentions {RunDir.LAST_CKPT}"] if RunDir.LAST_CKPT in text else []
    assert spelt == []
