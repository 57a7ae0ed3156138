"""Training batches with augmentation done in numpy, outside the saved model.

Random-augmentation layers leave ops that tf2onnx cannot convert (docs/dependencies.md), and
numpy works under every Keras backend. Making a batch of 128 (gather, crop, flip, scale) takes a few
milliseconds: little next to a training step on the 2-core CPU, but about a small model's whole
step on a GPU, which is why ``train/prefetch.py`` makes the next batch during the current step.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from edge_runtime.preprocess import scale_pixels


def random_crop_flip(x: np.ndarray, pad: int, flip: bool, rng: np.random.Generator) -> np.ndarray:
    """Pad by ``pad`` pixels (reflect), crop back at a random offset, mirror half the images."""
    n, h, w, _ = x.shape
    if pad > 0:
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        dy = rng.integers(0, 2 * pad + 1, size=n)
        dx = rng.integers(0, 2 * pad + 1, size=n)
        # One slice copy per image: three times faster than one fancy-indexed gather (measured).
        x = np.empty_like(x)
        for i in range(n):
            x[i] = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    if flip:
        mirror = rng.random(n) < 0.5
        x = x.copy() if pad == 0 else x
        x[mirror] = x[mirror, :, ::-1]
    return x


def random_cutout(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Fill one size x size square per image, centred at a random pixel (it may hang over the
    edge), with mid-grey 128, about the data's mean (Cutout, DeVries and Taylor 2017)."""
    n, h, w, _ = x.shape
    top = rng.integers(0, h, size=n) - size // 2
    left = rng.integers(0, w, size=n) - size // 2
    rows = np.arange(h)[None, :]
    cols = np.arange(w)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)      # (n, h)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)    # (n, w)
    x = x.copy()
    x[in_rows[:, :, None] & in_cols[:, None, :]] = 128
    return x


class EpochData:
    """The training set as ``fit`` sees it: shuffled, augmented, scaled, one-hot batches.

    The order of epoch ``e`` and the augmentation of its batch ``b`` come from generators seeded
    by (seed, e) and (seed, e, b), and ``batches`` counts epochs itself, so a run resumed at
    epoch ``e`` sees exactly the batches an uninterrupted one would. A plain generator rather
    than a PyDataset: the latter's prefetching made a resumed epoch differ (measured).
    """

    def __init__(self, x, y, num_classes, batch_size, seed, crop_pad=0, flip=False, cutout=0,
                 mixup=0.0):
        self.x, self.y = x, y
        self.num_classes, self.batch_size = num_classes, batch_size
        self.seed, self.crop_pad, self.flip, self.cutout = seed, crop_pad, flip, cutout
        self.mixup = mixup

    @classmethod
    def for_recipe(cls, x, y, num_classes: int, recipe, seed: int) -> "EpochData":
        """Batches with the recipe's batch size and augmentation."""
        return cls(x, y, num_classes, recipe.batch_size, seed, recipe.crop_pad, recipe.flip,
                   recipe.cutout, recipe.mixup)

    def images_per_epoch(self) -> int:
        """Training images an epoch uses: all of them, less one when the last batch would
        hold an odd number; the image left out is a different one each epoch, the last of
        that epoch's shuffled order. Brought in when TensorFlow 2.21's oneDNN CPU kernels
        crashed narrow resnet8 models on odd-sized batches. Their graph now avoids the kernel
        (train.models.STRIDED_PROJECTION_MIN_CHANNELS), but runs trained before keep theirs,
        and quantization-aware conversion fine-tunes them through this class; the rule also
        keeps a seed's batches as earlier runs, whose figures docs/results.md quotes, had them."""
        remainder = len(self.y) % self.batch_size
        return len(self.y) - (remainder % 2)

    def steps(self) -> int:
        """Batches per epoch."""
        return int(np.ceil(self.images_per_epoch() / self.batch_size))

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch``: (x float32 (B, H, W, 3), y one-hot float32 (B, C))."""
        return self._prepare(epoch, index, self._picked(self._order(epoch), index))

    def batches(self, first_epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every batch of every epoch from ``first_epoch`` on, endlessly (fit stops it)."""
        epoch = first_epoch
        while True:
            order = self._order(epoch)
            for index in range(self.steps()):
                yield self._prepare(epoch, index, self._picked(order, index))
            epoch += 1

    def _order(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.y))
        return order[:self.images_per_epoch()]

    def _picked(self, order: np.ndarray, index: int) -> np.ndarray:
        return order[index * self.batch_size:(index + 1) * self.batch_size]

    def _prepare(self, epoch: int, index: int, picked: np.ndarray):
        x = self.x[picked]
        rng = np.random.default_rng([self.seed, epoch, index + 1])
        if self.crop_pad or self.flip:
            x = random_crop_flip(x, self.crop_pad, self.flip, rng)
        if self.cutout:  # drawn after crop and flip, so those stay as without cutout
            x = random_cutout(x, self.cutout, rng)
        labels = one_hot(self.y[picked], self.num_classes)
        if self.mixup:  # drawn last, so the images it blends are those without it
            return mixup(scale_pixels(x), labels, self.mixup, rng)
        return scale_pixels(x), labels


def mixup(x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator):
    """Each image blended with another of the batch, its label likewise, by a weight drawn
    from Beta(alpha, alpha) per image (mixup, Zhang et al. 2018)."""
    weight = rng.beta(alpha, alpha, size=len(y)).astype(np.float32)
    partner = rng.permutation(len(y))
    blend_x = weight[:, None, None, None] * x + (1 - weight[:, None, None, None]) * x[partner]
    blend_y = weight[:, None] * y + (1 - weight[:, None]) * y[partner]
    # float32 in, float32 out: no copy on the per-batch path
    return blend_x.astype(np.float32, copy=False), blend_y.astype(np.float32, copy=False)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 one-hot rows for integer labels."""
    return np.eye(num_classes, dtype=np.float32)[labels]
