"""Behaviour does not change: the golden run (qbn.testing.golden, trained once per session by the
CLI) gives the numbers and the packed file recorded in tests/fixtures/golden/run.json.

What is compared how: sizes, counts and bits are exact anywhere. On the platform the fixture was
recorded on (same torch, same CPU capability: the float kernels then are the same) the run is
deterministic, so the packed file's SHA-256, the decoded signs' SHA-256 and the accuracies are
exact too. Elsewhere last-bit differences in the float kernels can move a few latent weights across
zero during the epoch, so accuracies may differ by one image and each layer's count of +1 signs by
0.5 % of its weights; the SHA-256s are not compared there."""

from __future__ import annotations

import json

from qbn.testing.golden import FIXTURE, measure, platform


def test_golden_run_gives_the_recorded_numbers(shared_run_dir):
    expected = json.loads(FIXTURE.read_text())
    got = measure(shared_run_dir)
    assert got["overrides"] == expected["overrides"]
    s, e = got["summary"], expected["summary"]
    for key in ("params", "binarized_params", "epochs", "global_step"):
        assert s[key] == e[key], key
    for key in ("bytes", "bits_per_binarized_weight"):
        assert got["packed"][key] == expected["packed"][key], key
    pos, exp_pos = got["packed"]["positive_signs"], expected["packed"]["positive_signs"]
    assert sorted(pos) == sorted(exp_pos)
    if platform() == expected["platform"]:  # deterministic here: everything bit for bit
        assert s["test/acc"] == e["test/acc"] and s["val/acc_best"] == e["val/acc_best"]
        assert pos == exp_pos
        assert got["packed"]["sha256"] == expected["packed"]["sha256"]
        assert got["packed"]["signs_sha256"] == expected["packed"]["signs_sha256"]
    else:  # another CPU: counts within one image, sign counts within 0.5 % of each layer
        assert abs(s["test/acc"] - e["test/acc"]) * expected["test_images"] <= 1 + 1e-6
        assert abs(s["val/acc_best"] - e["val/acc_best"]) * expected["val_images"] <= 1 + 1e-6
        for name, (n, total) in exp_pos.items():
            assert pos[name][1] == total and abs(pos[name][0] - n) <= 0.005 * total, name
