"""BatchNormalization's training step on TensorFlow's fused kernel.

Keras 3 computes a BatchNormalization layer's batch statistics and normalization with separate
ops (moments, then arithmetic), on every backend alike. On the TensorFlow backend one fused
kernel (FusedBatchNormV3, oneDNN's on a CPU, cuDNN's on a GPU) does the same work: a training
step of seed_cnn takes about 30% less time on a 2-core CPU (docs/results.md, "Training on a
CPU"). ``fused_batch_norm()`` swaps the fused kernel in while ``model.fit`` traces its train
function, so the models, their saved files and every other caller keep Keras' own layer; it
falls back to Keras' computation wherever the kernel does not apply (a mask, renorm,
synchronized statistics, another axis or rank, a precision other than float32).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


def fusable(layer, inputs, mask) -> bool:
    """Whether ``layer`` (a keras BatchNormalization) can normalize ``inputs`` with the fused
    kernel and give what Keras' own computation gives."""
    rank = len(inputs.shape)
    return (rank == 4 and layer.axis in (-1, rank - 1) and mask is None
            and not layer.renorm and not layer.synchronized and layer.center and layer.scale
            and inputs.dtype == "float32" and layer.compute_dtype == "float32")


def fused_training_call(layer, inputs):
    """The layer's output in training, with its moving statistics updated, as Keras' call
    does (moving = moving * momentum + batch * (1 - momentum), the batch variance biased)."""
    import tensorflow as tf

    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, layer.gamma, layer.beta, epsilon=layer.epsilon, is_training=True)[:3]
    # The kernel returns the batch variance with Bessel's correction (n / (n - 1)); Keras
    # keeps the biased one, which the kernel also normalizes with.
    count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
    variance = variance * (count - 1.0) / count
    layer.moving_mean.assign(layer.moving_mean * layer.momentum
                             + mean * (1.0 - layer.momentum))
    layer.moving_variance.assign(layer.moving_variance * layer.momentum
                                 + variance * (1.0 - layer.momentum))
    return outputs


@contextmanager
def fused_batch_norm(backend: str) -> Iterator[None]:
    """While inside, BatchNormalization layers in training use the fused kernel on the
    TensorFlow ``backend`` (elsewhere nothing changes). Train functions traced inside keep
    it after the block ends, as a traced function keeps what it traced."""
    if backend != "tensorflow":
        yield
        return
    from keras import layers

    keras_call = layers.BatchNormalization.call

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and fusable(self, inputs, mask):
            return fused_training_call(self, inputs)
        return keras_call(self, inputs, training=training, mask=mask)

    layers.BatchNormalization.call = call
    try:
        yield
    finally:
        layers.BatchNormalization.call = keras_call
