"""Offline sign-dynamics analysis of a run directory's snapshots -> signs.json (docs/study.md).

    python -m qbn.signs RUN_DIR        (or qbn-signs RUN_DIR, or python -m qbn.analysis.sign_dynamics RUN_DIR)

For every snapshot epoch e (row labels; epoch 0 = initialisation) and per layer and overall:
c_e, d_e, the last-flip epoch histogram, E_0.90/E_0.95/E_0.99, the stable-sign fraction curve
and the share of signs that end different from initialisation. Missing or unreadable snapshots
are named in `problems` and skipped; what remains is analysed.

At step resolution, from signs/last_flip_step.pt (the sign-flip callback's last-flip step of
every weight) when the run has one, `steps`: E_q as a share of training steps over all weights
and over the ever-flipped ones, the share that ever flipped, and the stable-share curve against
steps, overall and per layer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import QbnError
from ..file_io import check_can_write, write_json
from ..rundir import RunDir
from ..signs import (
    SnapshotError,
    distance_to_final,
    epoch_changes,
    freeze_epoch_from,
    last_flip_epochs,
    last_flip_histogram,
    last_flip_path,
    list_snapshots,
    load_last_flip,
    load_snapshot,
    snapshot_wanted,
    stable_from_histogram,
    stack_history,
    step_grid,
    step_timing,
)

QUANTILES = (0.90, 0.95, 0.99)
USAGE = "python -m qbn.signs RUN_DIR (writes signs.json from the run's signs/epoch_NNN.pt)"
SIGNS_JSON = RunDir.SIGNS_JSON


def _expected_epochs(run_dir: Path, found: list[int]) -> list[int]:
    """Epochs the snapshot callback should have written, from the run's config and summary."""
    cfg = RunDir(run_dir).saved_config()
    every, chosen = 1, set()
    try:
        snap = cfg.callbacks.get("sign_snapshots") if cfg is not None else None
        if snap:
            every = int(snap.get("every_n_epochs") or 0)
            chosen = {int(e) for e in (snap.get("epochs") or [])}
    except Exception:  # noqa: BLE001  a foreign or partial config: assume every epoch
        pass
    summary = RunDir(run_dir).read_summary() or {}
    last = summary.get("epochs") if summary.get("status") == "completed" else None
    last = int(last) if isinstance(last, int) else (max(found) if found else 0)
    first = min(found) if found else 0  # a run started from an epoch-J checkpoint begins at J
    wanted = {first, last} | {e for e in range(first, last + 1) if snapshot_wanted(e, every, chosen, e == last)}
    return sorted(wanted)


def dynamics(history: torch.Tensor, epochs: list[int]) -> dict:
    """Every sign-dynamics figure of one (E + 1) x N history whose rows are `epochs`."""
    last_flip = last_flip_epochs(history, epochs)
    hist = last_flip_histogram(last_flip, epochs[-1])
    stable = stable_from_histogram(hist, last_flip.numel())
    out = {
        "num_weights": int(history.shape[1]),
        "c_e": epoch_changes(history).tolist(),                 # for epochs[1:]
        "d_e": distance_to_final(history).tolist(),             # for epochs
        "changed_from_init": float((history[-1] != history[0]).double().mean()),
        "last_flip_histogram": [int(hist[e]) for e in epochs],  # weights whose L_i is each epoch
        "stable_fraction": [float(stable[e]) for e in epochs],  # share with L_i <= e
    }
    for q in QUANTILES:
        out[f"E_{q:.2f}"] = freeze_epoch_from(stable, q)
    return out


STEP_KEYS = tuple(f"E_{q:.2f}_frac{tail}" for tail in ("", "_flipped") for q in QUANTILES) + ("ever_flipped",)


def step_dynamics(last_flip: dict[str, torch.Tensor], total_steps: int) -> dict:
    """signs.json's `steps`: step-resolution figures overall and per layer, on one grid of steps."""
    grid = step_grid(total_steps)
    flat = torch.cat([t.reshape(-1) for t in last_flip.values()]) if last_flip else torch.zeros(0, dtype=torch.int32)
    return {"total_steps": int(total_steps), "overall": step_timing(flat, total_steps, grid),
            "layers": {n: step_timing(t, total_steps, grid) for n, t in last_flip.items()}}


def _read_steps(run_dir: Path, problems: list[tuple[int, str]]) -> dict | None:
    path = last_flip_path(run_dir)
    if not path.exists():
        return None
    try:
        layers, total = load_last_flip(path)
    except SnapshotError as e:
        problems.append((-1, str(e)))
        return None
    if total < 1 or not layers:
        problems.append((-1, f"{path} records no optimizer step: no step-resolution figures"))
        return None
    return step_dynamics(layers, total)


def analyze_run(run_dir: str | Path, write: bool = True) -> dict:
    """Analyse <run_dir>/signs/*.pt; write signs.json and E_q into summary.json; return the dict."""
    run_dir = Path(run_dir)
    files = list_snapshots(run_dir)
    problems: list[tuple[int, str]] = []  # (epoch, what): listed by epoch
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    for epoch, path in files.items():
        try:
            snapshots[epoch] = load_snapshot(path)
        except SnapshotError as e:
            problems.append((epoch, str(e)))
    missing = [e for e in _expected_epochs(run_dir, list(files)) if e not in files]
    problems += [(e, f"snapshot {Path('signs') / f'epoch_{e:03d}.pt'} is missing") for e in missing]
    # keep the layers (names and shapes) of the last readable snapshot; drop epochs that differ
    if snapshots:
        ref = snapshots[max(snapshots)]
        for e in list(snapshots):
            s = snapshots[e]
            if list(s) != list(ref) or any(s[n].shape != ref[n].shape for n in ref):
                problems.append((e, f"snapshot layers differ from epoch {max(snapshots)}'s; skipped"))
                del snapshots[e]
    if files and min(files) > 0:
        problems.append((min(files), f"the first snapshot (no epoch 000: the run started from a checkpoint of epoch "
                                     f"{min(files)}, or epoch 000 was deleted); L_i and E_q count from it"))
    epochs = sorted(snapshots)
    steps = _read_steps(run_dir, problems)
    result: dict = {"run_dir": str(run_dir), "epochs": epochs, "missing": missing,
                    "problems": [f"epoch {e}: {what}" if e >= 0 else what
                                 for e, what in sorted(problems, key=lambda p: p[0])]}
    if len(epochs) < 2:
        result["problems"].append(f"need at least 2 readable snapshots, found {len(epochs)}: nothing to analyse")
        result["overall"], result["layers"] = None, {}
    else:
        ordered = [snapshots[e] for e in epochs]
        names = list(ordered[-1])
        result["overall"] = dynamics(stack_history(ordered), epochs)
        result["layers"] = {n: {"shape": list(ordered[-1][n].shape), **dynamics(stack_history(ordered, [n]), epochs)}
                            for n in names}
    if steps is not None:
        result["steps"] = steps
    if write:
        write_json(RunDir(run_dir).signs_json, result)
        if RunDir(run_dir).summary.exists():
            RunDir(run_dir).update_summary(**summary_fields(result))
    return result


def summary_fields(result: dict) -> dict:
    """signs.json's headline figures for summary.json: E_q in epochs (from the snapshots) and, at step
    resolution, E_q as a share of training (all weights, ever-flipped weights) and the flipped share."""
    fields = {}
    o = result.get("overall")
    if o:
        fields.update({f"signs/{k}": o[k] for k in ("E_0.90", "E_0.95", "E_0.99")})
        fields["signs/changed_from_init"] = o["changed_from_init"]
    steps = result.get("steps")
    if steps:
        fields.update({f"signs/{k}": steps["overall"][k] for k in STEP_KEYS})
    return fields


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(f"usage: {USAGE}")
        return 0
    if len(argv) != 1:
        print(f"usage: {USAGE}", file=sys.stderr)
        return 2
    try:
        if not Path(argv[0]).is_dir():
            raise QbnError(f"{argv[0]} is not a directory (give a run directory with signs/epoch_NNN.pt)")
        RunDir(argv[0]).read_summary()   # a damaged summary.json is named before anything is written
        check_can_write(RunDir(argv[0]).signs_json, RunDir(argv[0]).summary)
        result = analyze_run(argv[0])
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    for p in result["problems"]:
        print(f"qbn: warning: {p}", file=sys.stderr)
    o = result["overall"]
    steps = (result.get("steps") or {}).get("overall")
    if steps:
        print(f"{steps['total_steps']} steps: E_0.90 = {steps['E_0.90_frac']:.3f} of training "
              f"({steps['E_0.90_frac_flipped'] or 0:.3f} over the {100 * steps['ever_flipped']:.1f} % that ever flip)")
    if o:
        print(f"epochs {result['epochs'][0]}..{result['epochs'][-1]}: E_0.90={o['E_0.90']} E_0.95={o['E_0.95']} "
              f"E_0.99={o['E_0.99']}; {100 * o['changed_from_init']:.1f} % of signs end different from epoch "
              f"{result['epochs'][0]}; wrote {Path(argv[0]) / SIGNS_JSON}")
    return 0 if o or steps else 1


if __name__ == "__main__":
    sys.exit(main())
