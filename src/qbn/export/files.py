"""Packed files from checkpoints, run directories and live modules: writing them (atomically),
recognising them, and their size report."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import model_from_checkpoint, run_dir_of
from ..errors import QbnError
from ..file_io import check_can_write, write_bytes
from ..rundir import RunDir
from .container import MAGIC, PREFIX
from .loader import load_bytes
from .sizes import size_report
from .writer import model_spec, pack_module

DEFAULT_NAME = RunDir.PACKED
WRITES = (RunDir.PACKED,)   # into the run directory, by default; and the size totals into summary.json


def export_module(module, cfg, out: str | Path | None = None, fmt: str = "packed", alpha_dtype: str = "fp32",
                  fp_dtype: str = "fp32", fold_bn: bool = False, source: dict | None = None) -> bytes:
    """Pack a live BWNModule built from the composed config `cfg`; write it to `out` if given."""
    was_training = module.training
    module.eval()
    try:
        buf = pack_module(module, model_spec(cfg), fmt, alpha_dtype, fp_dtype, fold_bn, source)
    finally:
        module.train(was_training)
    if out is not None:
        write_atomic(out, buf)
    return buf


def write_atomic(path: str | Path, buf: bytes) -> None:
    write_bytes(path, buf)  # a temporary file renamed once complete; OutputError when it cannot be written


def export(source: str | Path, out: str | Path | None = None, fmt: str = "packed", alpha_dtype: str = "fp32",
           fp_dtype: str = "fp32", fold_bn: bool = False) -> Path:
    """Pack the checkpoint (or run directory's last checkpoint) `source`; default output <run_dir>/model.qbn.
    When the source is in a run directory, its summary.json gets the size totals."""
    return export_with_report(source, out, fmt, alpha_dtype, fp_dtype, fold_bn)[0]


def export_with_report(source: str | Path, out: str | Path | None = None, fmt: str = "packed",
                       alpha_dtype: str = "fp32", fp_dtype: str = "fp32", fold_bn: bool = False) -> tuple[Path, dict]:
    """export(), also returning the written file's report_bytes (decoded once, here, so the CLI
    prints sizes without reading the file back)."""
    source = Path(source)
    if not source.exists():
        raise QbnError(f"{source} does not exist: give a run directory or a checkpoint")
    module, cfg = model_from_checkpoint(source, require_binary=False)
    run_dir = run_dir_of(source if source.is_dir() else source.parent)
    if out is None:
        out = RunDir(run_dir).packed
    out = Path(out)
    info = {"checkpoint": str(source), "run_dir": str(run_dir) if run_dir else None, "dataset": str(cfg.dataset.name),
            "scaling": str(cfg.scaling.name) if cfg.binary.enabled else "fp", "binary": dict(cfg.binary)}
    if run_dir is not None:  # every check before the first byte is written: summary.json reads and can be written
        RunDir(run_dir).read_summary()
        check_can_write(RunDir(run_dir).summary)
    check_can_write(out)
    buf = export_module(module, cfg, None, fmt, alpha_dtype, fp_dtype, fold_bn, info)
    report = report_bytes(buf)
    write_atomic(out, buf)
    if run_dir is not None:
        totals = {f"export/{k}": v for k, v in report["totals"].items() if v is not None and not isinstance(v, dict)}
        RunDir(run_dir).update_summary(**totals, **{"export/file": str(out)})
    return out, report


def report_bytes(buf: bytes) -> dict:
    """size_report of a file's bytes, after the loader's full validation (so a bad file is a
    PackedFileError here too, and a freshly written file is proven loadable)."""
    model = load_bytes(buf)  # the loader checked the prefix, header and every section, and decoded them
    header_len = PREFIX.unpack_from(buf)[2]
    return size_report(model.header, header_len, len(buf), model.coding)


def is_packed_file(path: str | Path) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(8) == MAGIC
