"""A small ImageFolder tree of colored shapes, to try dataset=image_folder without data of one's own
(and for its tests and benchmark): `python -m qbn.data.shapes DIR [--train N] [--val N] [--size S]`.

Three classes (circle, square, triangle); each image one shape of a random color, size and place
on a noisy background of another color, so color says nothing about the class: a network must
learn the shape.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

CLASSES = ("circle", "square", "triangle")


def _draw(kind: str, size: int, rng: random.Random):
    from PIL import Image, ImageDraw

    def color():
        return tuple(rng.randrange(256) for _ in range(3))

    fg, bg = color(), color()
    while sum(abs(a - b) for a, b in zip(fg, bg, strict=True)) < 200:  # the shape must stand out from its background
        fg = color()
    img = Image.new("RGB", (size, size), bg)
    noise = Image.effect_noise((size, size), 24).convert("RGB")
    img = Image.blend(img, noise, 0.15)
    r = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    draw = ImageDraw.Draw(img)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return img


def write_shapes_tree(root: str | Path, train_per_class: int = 217, val_per_class: int = 50, size: int = 32,
                      seed: int = 0) -> Path:
    """root/train/<class>/NNNN.png and root/val/<class>/NNNN.png; returns root."""
    root, rng = Path(root), random.Random(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _draw(kind, size, rng).save(folder / f"{i:04d}.png")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qbn.data.shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder to write (train/ and val/ with one sub-folder per class)")
    parser.add_argument("--train", type=int, default=217, help="training images per class")
    parser.add_argument("--val", type=int, default=50, help="validation images per class")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    args = parser.parse_args(argv)
    root = write_shapes_tree(args.root, args.train, args.val, args.size)
    print(f"wrote {3 * (args.train + args.val)} images in {root}; train on it with: python -m qbn.train "
          f"dataset=image_folder dataset.data_dir={root} dataset.image_size={args.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
