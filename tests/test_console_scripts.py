"""Every console script `qbn-X` of pyproject.toml also runs as `python -m qbn.X`, with the same
behaviour (the same entry function, the same answer to --help)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qbn.testing.runs import ROOT, run_cli

# [project.scripts] of pyproject.toml, read by hand (tomllib needs Python 3.11; qbn supports 3.10)
_PYPROJECT = (Path(__file__).parents[1] / "pyproject.toml").read_text()
_SECTION = _PYPROJECT.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^(qbn-[\w-]+) = "([\w.:]+)"', _SECTION, re.M))


def _module(script: str) -> str:
    return "qbn." + script.removeprefix("qbn-")


def test_every_console_script_has_a_python_m_module_that_runs_as_a_script():
    assert len(SCRIPTS) >= 9
    for script in SCRIPTS:
        spec = importlib.util.find_spec(_module(script))
        assert spec is not None, f"{script}: no module {_module(script)}"
        main = Path(spec.origin).with_name("__main__.py") if spec.submodule_search_locations else Path(spec.origin)
        assert 'if __name__ == "__main__":' in main.read_text(), f"python -m {_module(script)} would do nothing"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_python_m_answers_help_like_its_console_script(script):
    module, function = SCRIPTS[script].split(":")
    as_module = run_cli(_module(script), "--help", timeout=300)
    as_script = subprocess.run(  # what the installed console script runs: the entry function
        [sys.executable, "-c", f"import sys; from {module} import {function} as f; sys.exit(f())", "--help"],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert as_module.returncode == 0 and as_script.returncode == 0, (as_module.stderr[-2000:], as_script.stderr[-2000:])
    assert "Traceback" not in as_module.stderr + as_script.stderr
    assert as_module.stdout.strip() and as_module.stdout == as_script.stdout
