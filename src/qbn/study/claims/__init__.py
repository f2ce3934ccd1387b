"""Each claim's results from the study's runs (qbn.study.collect), as typed Sections
(qbn.study.results): numbers, intervals and verdicts, nothing about how they are shown."""

from __future__ import annotations

from pathlib import Path

from ..collect import Run
from ..results import Section
from .kernels import kernels_section
from .rewind import rewind_section
from .scaling import scaling_section
from .signs import signs_section
from .subbit import subbit_section


def sections(runs: list[Run], study_dir: Path) -> list[Section]:
    """The claims' sections in the report's order (their keys are readings.md's headings)."""
    return [
        scaling_section(runs),
        signs_section(runs),
        rewind_section(runs),
        kernels_section(runs),
        subbit_section(runs, study_dir),
    ]
