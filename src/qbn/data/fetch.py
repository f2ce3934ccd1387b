"""`python -m qbn.data.fetch fashion_mnist [DATA_DIR]`: make sure a dataset is on disk.

Order: already in DATA_DIR; else Debian's package (installed with apt-get when we are root and
apt is there); else torchvision's download; else one message listing the ways.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ..errors import command
from .datasets import DEBIAN_FASHION_MNIST, FashionMNISTDataModule


def fetch_fashion_mnist(data_dir: str) -> None:
    can_install = shutil.which("apt-get") and os.geteuid() == 0
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists() and can_install:
        raw_dir = FashionMNISTDataModule(name="fashion_mnist", data_dir=data_dir)._raw_dir()
        if not (raw_dir / "t10k-labels-idx1-ubyte").exists():
            print("qbn: installing Debian's dataset-fashion-mnist ...", flush=True)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], env=env,
                           stdin=subprocess.DEVNULL, check=False, stdout=subprocess.DEVNULL)
    dm = FashionMNISTDataModule(name="fashion_mnist", data_dir=data_dir, download=True)
    x, _, tx, _ = dm.load_arrays()
    print(f"qbn: Fashion-MNIST ready in {dm._raw_dir()} ({len(x)} train, {len(tx)} test images)")


def main(argv: list[str] | None = None) -> int:
    def fetch(args: list[str]) -> None:
        fetch_fashion_mnist(args[1] if len(args) > 1 else os.environ.get("QBN_DATA_DIR", "data"))

    return command(sys.argv[1:] if argv is None else argv, "python -m qbn.data.fetch fashion_mnist [DATA_DIR]",
                   lambda a: bool(a) and a[0] == "fashion_mnist", fetch)


if __name__ == "__main__":
    sys.exit(main())
