"""Augmentation outside the model: shapes, determinism, and that pixels come from the image."""
import numpy as np

from train.augment import EpochData, random_crop_flip


def test_crop_flip_keeps_shape_and_pixel_values():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    out = random_crop_flip(x, pad=4, flip=True, rng=np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert set(np.unique(out[0])) <= set(np.unique(x[0]))


def test_flip_only_mirrors():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    out = random_crop_flip(x, pad=0, flip=True, rng=np.random.default_rng(3))
    for original, result in zip(x, out):
        assert np.array_equal(result, original) or np.array_equal(result, original[:, ::-1])


def test_epoch_data_is_reproducible_per_epoch():
    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    y = np.arange(20) % 2
    first = EpochData(x, y, 2, 8, seed=5, crop_pad=2, flip=True)
    second = EpochData(x, y, 2, 8, seed=5, crop_pad=2, flip=True)
    xa, ya = first.arrays(3)
    xb, yb = second.arrays(3)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert xa.dtype == np.float32 and xa.max() <= 1.0 and ya.shape == (20, 2)
    assert not np.array_equal(first.arrays(4)[0], xa)
    assert first.steps() == 3
    # every label still matches its (augmented) image's source: the shuffle moved both
    order = np.random.default_rng([5, 3]).permutation(20)
    assert np.array_equal(ya.argmax(1), y[order])
    assert np.array_equal(x, np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))
