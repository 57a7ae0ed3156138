"""Training on several accelerators of one machine: TensorFlow's MirroredStrategy when more
than one GPU is visible to TensorFlow, Keras' data-parallel distribution under JAX when more
than one accelerator is visible, else plain single-device training. The batch size stays the
global batch: each device gets batch_size / devices."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

SINGLE, MIRRORED, DATA_PARALLEL = "single-device", "tf.distribute.MirroredStrategy", \
    "keras.distribution.DataParallel"


def distribution_plan(backend: str, devices: list[str]) -> str:
    """Which multi-device method applies to ``devices`` (e.g. ['gpu:0', 'gpu:1'])."""
    accelerators = [d for d in devices if not d.startswith("cpu")]
    if len(accelerators) > 1 and backend == "tensorflow":
        return MIRRORED
    if len(accelerators) > 1 and backend == "jax":
        return DATA_PARALLEL
    return SINGLE


@contextlib.contextmanager
def distribution_scope(plan: str) -> Iterator[None]:
    """Build, compile and fit the model inside this: variables are then created mirrored
    (TensorFlow) or replicated with the batch sharded (JAX)."""
    if plan == MIRRORED:
        import tensorflow as tf

        with tf.distribute.MirroredStrategy().scope():
            yield
    elif plan == DATA_PARALLEL:
        import keras

        keras.distribution.set_distribution(keras.distribution.DataParallel())
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)
    else:
        yield
