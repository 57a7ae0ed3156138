"""A small slice of the real CIFAR-10 JPEG folder read through the user's image-folder path."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.train.data import CIFAR10_CLASSES, load_source

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg"

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets/cifar10-jpeg not beside the checkout"),
]


def test_real_cifar_slice_reads_with_cifar_label_order(tmp_path, cache_dir):
    for split, count in (("train", 6), ("test", 2)):
        for name in CIFAR10_CLASSES:
            target = tmp_path / split / name
            target.mkdir(parents=True)
            for source in sorted((SHARED / split / name).iterdir())[:count]:
                shutil.copy(source, target / source.name)
    raw = load_source(str(tmp_path), 32, cache_dir)
    assert raw.class_names == CIFAR10_CLASSES
    assert raw.train.x.shape == (60, 32, 32, 3) and len(raw.test) == 20
    first = sorted((SHARED / "train" / "airplane").iterdir())[0]
    expected = np.asarray(Image.open(first).convert("RGB"))
    assert np.array_equal(raw.train.x[0], expected)
