"""Read a W&B offline run file (run-*.wandb) back, for tests: the installed wandb writes it but has
no Python reader. The file is a LevelDB-style log (a 7-byte header ':W&B', magic 0xBEE1, version;
then 32 KiB blocks of chunks, each with a crc32, a length and a type FULL/FIRST/MIDDLE/LAST) of
serialized wandb_internal_pb2.Record messages."""

from __future__ import annotations

import json
import struct
import time
from collections import defaultdict
from pathlib import Path

BLOCK = 32768
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path):
    """Every Record in the file, in order."""
    from wandb.proto import wandb_internal_pb2

    buf = Path(path).read_bytes()
    ident, magic, _version = FILE_HEADER.unpack_from(buf, 0)
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B run file"
    pos, parts = FILE_HEADER.size, []
    while pos + CHUNK_HEADER.size <= len(buf):
        if BLOCK - pos % BLOCK < CHUNK_HEADER.size:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = CHUNK_HEADER.unpack_from(buf, pos)
        pos += CHUNK_HEADER.size
        if kind == 0 and length == 0:  # zero padding at the end of the last block
            break
        data, pos = buf[pos:pos + length], pos + length
        if kind in (FULL, FIRST):
            parts = [data]
        else:
            parts.append(data)
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            yield record


def _merge(into: dict, items) -> dict:
    """Record items (key or nested_key path, value_json) into a dict: nested keys become nested dicts."""
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        node = into
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return into


def wait_for_exit(path: str | Path, timeout: float = 120.0) -> None:
    """Block until the run file holds its exit record. wandb.finish() can return before W&B's
    writer process has flushed the file's tail (seen on a loaded CI machine: the last summary
    records were missing when read at once); the exit record is written last."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in records(path)):
                return
        except Exception:  # noqa: BLE001 - a half-written chunk at the tail: read again
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no exit record after {timeout:.0f} s; the W&B writer did not finish")
        time.sleep(0.5)


def read_run(path: str | Path) -> dict:
    """{'config': {...}, 'history': {key: [value per logged step]}, 'summary': {...}, 'files': [...]}
    of a run file; table and image values are W&B's file references ({'_type': 'table-file', 'path': ...}).
    Waits for the file to be complete first."""
    wait_for_exit(path)
    config, history, summary, files = {}, defaultdict(list), {}, []
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            _merge(config, r.run.config.update)
        elif kind == "config":
            _merge(config, r.config.update)
        elif kind == "history":
            for key, value in _merge({}, r.history.item).items():
                history[key].append(value)
        elif kind == "summary":
            _merge(summary, r.summary.update)
        elif kind == "files":
            files += [f.path for f in r.files.files]
    return {"config": config, "history": dict(history), "summary": summary, "files": files}


def read_table(run_file: str | Path, ref: dict) -> dict:
    """A logged table's {'columns': [...], 'data': [[...]]}, from its file reference."""
    assert ref["_type"] == "table-file", ref
    return json.loads((Path(run_file).parent / "files" / ref["path"]).read_text())
