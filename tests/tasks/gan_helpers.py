"""Tiny fabricated image folders for the gan tests (drawn with Pillow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def make_image_folder(root: Path, per_class: int, seed: int, size: int = 16, classes=("disc", "square"),
                      mode: str = "L") -> Path:
    """``root/<class>/NNN.png``: a bright disc or square at a random place on a dark, noisy ground."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new(mode, (size, size), 0 if mode == "L" else (0, 0, 0))
            d = ImageDraw.Draw(img)
            r = int(rng.integers(3, size // 3))
            x, y = (int(v) for v in rng.integers(r, size - r, 2))
            fill = int(rng.integers(160, 256))
            fill = fill if mode == "L" else (fill, fill // 2, 255 - fill)
            (d.ellipse if c == "disc" else d.rectangle)([x - r, y - r, x + r, y + r], fill=fill)
            a = np.asarray(img).astype(np.int16) + rng.integers(0, 20, np.asarray(img).shape)
            Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(root / c / f"{i:03d}.png")
    return root
