"""The packed model file (docs/format.md): real 1-bit and n-bit storage, entropy-coded kernels,
size accounting, and loading back to an inference module with bit-exact predictions."""

from .container import PackedFileError
from .files import (
    DEFAULT_NAME,
    export,
    export_module,
    export_with_report,
    is_packed_file,
    report_bytes,
)
from .loader import PackedModel, load, load_bytes, read_header
from .sizes import size_report
from .writer import model_spec, pack_module

__all__ = [
    "DEFAULT_NAME", "PackedFileError", "PackedModel", "export", "export_module", "export_with_report", "is_packed_file",
    "load", "load_bytes", "model_spec", "pack_module", "read_header", "report_bytes", "size_report",
]
