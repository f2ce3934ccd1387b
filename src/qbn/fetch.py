"""`python -m qbn.fetch fashion_mnist [DATA_DIR]`: the qbn-fetch command (qbn.data.fetch), under the
name of its console script like every other qbn-X."""

from __future__ import annotations

import sys

from .data.fetch import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
