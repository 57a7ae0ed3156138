"""BatchNorm statistics a short training leaves unsettled, computed again from the data.

Keras' BatchNormalization keeps moving averages of its inputs' mean and variance that start at
0 and 1 and keep ``momentum ** steps`` of those starting values after ``steps`` training
steps (0.99 ** 100 = 0.37). A run on a small folder of images takes few steps: 405 images for
25 epochs are 100 batches of 128, and a seed_cnn trained so scored 78% in training mode but 34%
on its own training images at inference, its first layer's moving variance 0.36 where its
inputs' variance was 0.01. Such a model's statistics are replaced by the exact ones of the
training images, layer after layer, each measured through the layers before it as inference
runs them. Runs long enough to have forgotten the starting values (CIFAR-10's 45,000 images
need 2 epochs) are left exactly as trained.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .evaluate import EVAL_BATCH

# The share of the starting values the moving averages may still hold: 1e-3 of a variance of 1
# next to inputs' 0.01 puts the normalized outputs' scale 5% off.
STARTING_SHARE = 1e-3


def unsettled_layers(model, steps: int) -> list:
    """The model's BatchNormalization layers whose moving averages still hold more than
    STARTING_SHARE of their starting values after ``steps`` training steps."""
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            and layer.momentum ** steps > STARTING_SHARE]


def recompute_statistics(model, layers: list, images: np.ndarray,
                         prepare: Callable[[np.ndarray], np.ndarray] = np.asarray) -> None:
    """Set each of ``layers`` (in the model's order) to the mean and variance of its inputs
    over ``images``, made model-ready a batch at a time by ``prepare`` (a float32 copy of a
    whole training set of larger images would take gigabytes), as inference computes them
    with the layers before it already set."""
    import keras

    for layer in layers:
        upstream = keras.Model(model.input, layer.input)
        total = squares = 0.0
        count = 0
        for start in range(0, len(images), EVAL_BATCH):
            batch = prepare(images[start:start + EVAL_BATCH])
            values = keras.ops.convert_to_numpy(
                upstream(batch, training=False)).astype(np.float64)
            values = values.reshape(-1, values.shape[-1])
            total = total + values.sum(axis=0)
            squares = squares + (values ** 2).sum(axis=0)
            count += len(values)
        mean = total / count
        variance = np.maximum(squares / count - mean ** 2, 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
