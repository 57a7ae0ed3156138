"""Tiny labelled image trees of noisy solid colours: data the tests and the study executors'
overhead measurement make for themselves (a network-free machine has no data set to fetch)."""
from __future__ import annotations

from pathlib import Path

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
LABELS = ["class0", "class1", "class2"]


def write_class_tree(root: Path, per_class: int, seed: int = 0, size: int = 32) -> Path:
    """root/class{0,1,2}/NNN.png: noisy solid colours, easy to learn, distinct per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, colour in enumerate(COLOURS):
        folder = root / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.normal(0, 25, (size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root
