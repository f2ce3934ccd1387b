"""Reading runs back: the stable-share curve as the sign instrument writes it into signs.json, and the kernel
statistics from summary.json or, where it lacks them, from kernels.json (its overall and null parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qbn.study import keys as K
from qbn.study.collect import Run, stable_curve, stable_share_at


def _run(summary: dict | None = None, signs: dict | None = None, kernels: dict | None = None) -> Run:
    r = Run("scaling", "job", Path("/nonexistent"), {"global_step": 100, "max_epochs": 4, **(summary or {})}, {})
    r.__dict__["signs"] = signs or {}  # cached properties, set as if read from the files
    r.__dict__["kernels"] = kernels or {}
    return r


def test_stable_share_curve_as_the_sign_instrument_writes_it():
    """signs.json["steps"]["overall"] is qbn.signs.step_timing's output: the curve the study reads is its "all"."""
    import torch

    from qbn.signs import step_timing

    last_flip = torch.tensor([0, 0, 0, 10, 40, 80, 100, 0, 0, 25])  # 4 of 10 weights flip after step 0
    timing = step_timing(last_flip, 100, grid=[0, 25, 50, 100])
    r = _run(signs={"steps": {"total_steps": 100, "overall": timing, "layers": {}}})
    assert stable_curve(r) == ([0.0, 25.0, 50.0, 100.0], [0.5, 0.7, 0.8, 1.0])
    assert stable_share_at(r, 0.25) == 0.7  # the last point at or before step 25
    assert stable_share_at(r, 0.5) == 0.8  # weights whose last flip is at or before step 50
    assert stable_share_at(_run(), 0.5) is None  # a run without signs.json
    assert stable_curve(_run(signs={"steps": {"total_steps": 100}})) is None  # nor its curve


def test_kernel_values_from_the_summary_else_kernels_json():
    r = _run(
        {K.ENTROPY_MM: 8.1},
        kernels={
            "overall": {"entropy": 8.0, "entropy_mm": 7.0},
            "null": {"entropy_mm": 8.9, "coverage": [0.002 * (i + 1) for i in range(32)]},
        },
    )
    assert r.kernel_value(K.ENTROPY_MM) == 8.1  # summary.json first
    assert r.kernel_value(K.ENTROPY) == 8.0  # then kernels.json's overall
    assert r.kernel_value(K.NULL_ENTROPY_MM) == 8.9  # and its null part
    assert r.kernel_value(K.NULL_TOP8) == pytest.approx(0.016)  # C(8) of the null's coverage curve
    assert _run().kernel_value(K.NULL_TOP8) is None
