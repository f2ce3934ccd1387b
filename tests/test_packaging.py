"""The house: an installed qbn (a wheel, not the checkout) carries every config group and trains
from anywhere; layers import one way (import-linter), and a wrong-way import is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qbn.config import CONFIG_DIR
from qbn.testing.runs import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a clean copy of what the checkout tracks for packaging (no stale build/)."""
    out, tree = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("tree")
    for name in ("src", "conf"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(tree)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (path,) = out.glob("qbn-*.whl")
    return path


def test_configs_live_at_the_top_of_the_checkout():
    assert CONFIG_DIR == ROOT / "conf" and (CONFIG_DIR / "train.yaml").is_file()
    assert not (ROOT / "src" / "qbn" / "conf").exists()


def test_wheel_carries_every_config_group(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"qbn/conf/{p.relative_to(CONFIG_DIR).as_posix()}" for p in CONFIG_DIR.rglob("*.yaml")}
    groups = {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}
    assert {"model", "dataset", "callbacks", "rewind", "qbn", "experiment"} <= groups
    assert expected <= names, sorted(expected - names)
    assert {n for n in names if n.startswith("qbn/conf/") and n.endswith(".yaml")} == expected
    assert "qbn/train.py" in names and "qbn/testing/runs.py" in names


@pytest.mark.slow
def test_installed_wheel_composes_from_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    code = "import qbn.config as c, qbn.train as t; print(c.CONFIG_DIR); print(t.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.split() == [str(site / "qbn" / "conf"), str(site / "qbn" / "train.py")]
    job = subprocess.run([sys.executable, "-m", "qbn.train", "--cfg", "job", "model=resnet18", "rewind=trunk"],
                         cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-2000:]
    assert "name: resnet18" in job.stdout and "rewind_points:" in job.stdout


def _lint_imports(pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_layers_import_one_way():
    r = _lint_imports()
    assert r.returncode == 0, r.stdout[-3000:]
    assert "broken" in r.stdout and " 0 broken" in r.stdout


def test_a_wrong_way_import_breaks_the_layers(tmp_path):
    shutil.copytree(ROOT / "src" / "qbn", tmp_path / "qbn")
    ste = tmp_path / "qbn" / "binary" / "ste.py"
    ste.write_text(ste.read_text() + "\nimport qbn.callbacks  # the mathematics reaching up to the instruments\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0
    assert "qbn.binary.ste -> qbn.callbacks" in r.stdout


def test_repository_is_self_contained():
    """No file points outside the repository: no background documents it does not hold, no path of
    one machine (the pattern is assembled so that this file does not match it)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    pattern = "|".join([r"\.\./" + "shared", "STUDY" + r"\.md", "DESIGN" + r"\.md", "/" + "work/", "/" + "farm/"])
    r = subprocess.run(["git", "grep", "-nE", pattern], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == "", r.stdout[:2000]
