"""Augmentation outside the model: shapes, determinism, and that pixels come from the image."""
import numpy as np
import pytest

from edgekit.train.augment import EpochData, random_crop_flip


def test_crop_flip_keeps_shape_and_pixel_values():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    out = random_crop_flip(x, pad=4, flip=True, rng=np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert set(np.unique(out[0])) <= set(np.unique(x[0]))


def test_crop_is_a_window_of_the_reflect_padded_image_or_its_mirror():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 5, 3), dtype=np.uint8)
    out = random_crop_flip(x, pad=2, flip=True, rng=np.random.default_rng(7))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    offsets = set()
    for image, source in zip(out, padded):
        found = [(dy, dx, mirrored) for dy in range(5) for dx in range(5) for mirrored in (0, 1)
                 if np.array_equal(image[:, ::-1] if mirrored else image,
                                   source[dy:dy + 6, dx:dx + 5])]
        assert found, "a crop that is no window of its padded image"
        offsets.update(found)
    assert len(offsets) > 10  # offsets and mirroring vary from image to image


def test_flip_only_mirrors():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    out = random_crop_flip(x, pad=0, flip=True, rng=np.random.default_rng(3))
    for original, result in zip(x, out):
        assert np.array_equal(result, original) or np.array_equal(result, original[:, ::-1])


def test_epoch_data_is_reproducible_per_epoch():
    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    y = np.arange(20) % 2
    data = EpochData(x, y, 2, 8, seed=5, crop_pad=2, flip=True)
    assert data.steps() == 3
    stream = data.batches(first_epoch=2)
    from_epoch_2 = [next(stream) for _ in range(6)]  # epochs 2 and 3
    resumed = data.batches(first_epoch=3)
    for expected in from_epoch_2[3:]:
        got = next(resumed)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    xb, yb = data.batch(3, 1)
    assert np.array_equal(xb, from_epoch_2[4][0])
    assert xb.dtype == np.float32 and xb.max() <= 1.0 and yb.shape == (8, 2)
    assert len(from_epoch_2[2][0]) == 4  # the last batch holds the remainder
    assert not np.array_equal(from_epoch_2[0][0], from_epoch_2[3][0])
    # labels travel with their images through the shuffle
    order = np.random.default_rng([5, 2]).permutation(20)
    assert np.array_equal(from_epoch_2[0][1].argmax(1), y[order[:8]])


def test_cutout_greys_one_square_per_image_and_leaves_the_rest():
    from edgekit.train.augment import random_cutout

    x = np.zeros((64, 16, 16, 3), np.uint8)
    out = random_cutout(x, 6, np.random.default_rng(0))
    assert x.max() == 0  # the input is not modified
    grey = (out == 128).all(axis=3)
    for image, mask in zip(out, grey):
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        assert 1 <= len(rows) <= 6 and 1 <= len(cols) <= 6  # clipped at the edges
        assert mask.sum() == len(rows) * len(cols)  # one solid rectangle
        assert image[~mask].max() == 0  # nothing outside it changed
    assert (grey.sum(axis=(1, 2)) == 36).mean() > 0.3  # most squares lie wholly inside


def test_cutout_off_changes_nothing_and_on_is_reproducible():
    from edgekit.train.augment import EpochData

    x = np.random.default_rng(1).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    plain = EpochData(x, y, 4, 10, seed=3, crop_pad=2, flip=True)
    cut = EpochData(x, y, 4, 10, seed=3, crop_pad=2, flip=True, cutout=4)
    assert not np.array_equal(plain.batch(1, 2)[0], cut.batch(1, 2)[0])
    np.testing.assert_array_equal(cut.batch(1, 2)[0], cut.batch(1, 2)[0])
    # where cutout left pixels alone they equal the crop-and-flip-only batch
    kept = cut.batch(1, 2)[0] != 128 / 255
    np.testing.assert_array_equal(cut.batch(1, 2)[0][kept], plain.batch(1, 2)[0][kept])


def test_an_odd_last_batch_gives_up_one_image_a_different_one_each_epoch():
    x = np.arange(17 * 2 * 2 * 3, dtype=np.uint8).reshape(17, 2, 2, 3) % 251
    y = np.arange(17)  # the label names the image
    data = EpochData(x, y, 17, 8, seed=1)
    assert data.images_per_epoch() == 16 and data.steps() == 2  # 8 + 8, the 17th waits
    left_out = set()
    for epoch in range(6):
        seen = np.concatenate([data.batch(epoch, i)[1].argmax(1) for i in range(2)])
        assert len(seen) == len(set(seen)) == 16
        left_out |= set(range(17)) - set(seen)
    assert len(left_out) > 1
    assert [len(b[1]) for b in [EpochData(x[:13], y[:13], 17, 8, seed=1).batch(0, i)
                                for i in range(2)]] == [8, 4]  # 13 = 8 + 5 -> 8 + 4
    assert EpochData(x[:12], y[:12], 17, 8, seed=1).images_per_epoch() == 12  # even: all


def test_mixup_blends_each_image_and_its_label_with_one_partner():
    from edgekit.train.augment import mixup

    # Image i is all i and of class i: a blend's pixel value must equal its label's mean class.
    n = 32
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 4, 4, 3))
    y = np.eye(n, dtype=np.float32)
    mixed_x, mixed_y = mixup(x, y, 0.4, np.random.default_rng(1))
    assert mixed_x.dtype == mixed_y.dtype == np.float32 and mixed_x.shape == x.shape
    np.testing.assert_allclose(mixed_y.sum(1), 1, atol=1e-6)  # still a distribution
    for i, (image, label) in enumerate(zip(mixed_x, mixed_y)):
        assert np.ptp(image) < 1e-4  # one image blended with one other, uniformly
        classes = set(np.nonzero(label > 1e-6)[0])
        assert i in classes and len(classes) <= 2  # itself and one partner
        assert image[0, 0, 0] == pytest.approx(float(label @ np.arange(n)), abs=1e-4)
    assert np.mean(mixed_y.max(1) < 0.999) > 0.5  # most images really are blends


def test_mixup_in_epoch_data_is_reproducible_and_off_by_default():
    x = np.random.default_rng(2).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    plain = EpochData(x, y, 4, 10, seed=3, crop_pad=2, flip=True)
    mixed = EpochData(x, y, 4, 10, seed=3, crop_pad=2, flip=True, mixup=0.2)
    assert plain.batch(1, 2)[1].max(1).min() == 1.0  # one-hot without mixup
    xb, yb = mixed.batch(1, 2)
    assert yb.max(1).min() < 1.0 and np.allclose(yb.sum(1), 1)
    np.testing.assert_array_equal(xb, mixed.batch(1, 2)[0])
    assert not np.array_equal(xb, plain.batch(1, 2)[0])
