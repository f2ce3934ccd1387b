"""`python -m qbn.study.pack RUN_DIR [dataset overrides]`: claim 4's measurement of a QBN run,
in its own process (the study runs as a Hydra app, and evaluating composes a config again):
pack the run into RUN_DIR/model.qbn (its size totals go into summary.json, as `qbn.export`
does) and record the file's own test accuracy as export/test_acc."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import command
from ..export import export_with_report
from ..export.evaluate import evaluate_file
from ..rundir import RunDir


def pack_and_evaluate(run_dir: Path, dataset: list[str]) -> dict:
    out, _ = export_with_report(run_dir)
    result = evaluate_file(out, dataset)
    return RunDir(run_dir).update_summary(**{"export/test_acc": result["acc"], "export/test_images": result["images"]})


def main(argv: list[str]) -> int:
    def pack(args: list[str]) -> str:
        s = pack_and_evaluate(Path(args[0]), args[1:])
        return (f"packed {s['export/file']}: {s['export/file_bytes']} bytes, "
                f"test accuracy from the file {100 * s['export/test_acc']:.2f} %")

    return command(argv, "python -m qbn.study.pack RUN_DIR [dataset=... overrides]", bool, pack)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
