"""`python -m qbn.summary CKPT_OR_FILE`: the size table of a packed model (qbn.export.size_table;
"summary" here is the command's name, unrelated to a run's summary.json)."""

from __future__ import annotations

import sys

from .export.size_table import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
