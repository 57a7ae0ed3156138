"""BatchNormalization on TensorFlow's fused kernel during training gives what Keras' own
computation gives: outputs, gradients, moving statistics, and a few training steps' weights;
outside the block, and where the kernel does not apply, Keras' computation runs."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import edgekit.train.fused_batch_norm as fused_module
from edgekit.train.fused_batch_norm import fusable, fused_batch_norm

KERAS_CALL = layers.BatchNormalization.call
FUSED_TRAINING_CALL = fused_module.fused_training_call


def training_step(layer, x):
    """(outputs, gradients of a weighted sum of them) of one training call."""
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, training=True)
        loss = tf.reduce_sum(outputs * weights)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return outputs.numpy(), [g.numpy() for g in grads]


def test_the_fused_kernel_gives_what_keras_gives():
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 6, 4)), tf.float32)
    keras_layer = layers.BatchNormalization(momentum=0.9)
    fused_layer = layers.BatchNormalization(momentum=0.9)
    for layer in (keras_layer, fused_layer):
        layer.build(x.shape)
        layer.gamma.assign([0.5, 1.0, 1.5, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3, 0.0])
    expected, expected_grads = training_step(keras_layer, x)
    with fused_batch_norm("tensorflow"):
        assert layers.BatchNormalization.call is not KERAS_CALL
        got, got_grads = training_step(fused_layer, x)
    assert layers.BatchNormalization.call is KERAS_CALL  # restored
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        np.testing.assert_allclose(got_grad, expected_grad, atol=1e-4)
    # The moving averages follow the batch's mean and its biased variance, as Keras' do.
    np.testing.assert_allclose(fused_layer.moving_mean.numpy(), keras_layer.moving_mean.numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(fused_layer.moving_variance.numpy(),
                               keras_layer.moving_variance.numpy(), atol=1e-5)
    assert not np.allclose(keras_layer.moving_mean.numpy(), 0.0)  # they did move


def test_training_steps_through_fit_end_with_the_same_weights(monkeypatch):
    traced = []
    monkeypatch.setattr(fused_module, "fused_training_call",
                        lambda layer, inputs: traced.append(layer)
                        or FUSED_TRAINING_CALL(layer, inputs))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]

    def trained(fused: bool):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((8, 8, 3))
        hidden = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same")(inputs))
        model = keras.Model(inputs, layers.Dense(3, activation="softmax")(
            layers.Flatten()(hidden)))
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="categorical_crossentropy")
        with fused_batch_norm("tensorflow" if fused else "jax"):
            model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    fused_weights = trained(True)
    assert traced  # fit's train function was traced with the fused kernel
    for fused, plain in zip(fused_weights, trained(False)):
        np.testing.assert_allclose(fused, plain, atol=1e-4)


def test_keras_computation_runs_where_the_kernel_does_not_apply():
    layer = layers.BatchNormalization()
    dense_input = tf.zeros((4, 3))
    layer.build(dense_input.shape)
    assert not fusable(layer, dense_input, None)  # rank 2
    image = tf.zeros((2, 4, 4, 3))
    assert fusable(layer, image, None)
    assert not fusable(layer, image, tf.ones((2, 4, 4)))  # a mask
    assert not fusable(layer, tf.zeros((2, 4, 4, 3), tf.float16), None)
    renorm = layers.BatchNormalization(renorm=True)
    renorm.build(image.shape)
    assert not fusable(renorm, image, None)
    with fused_batch_norm("tensorflow"):
        outputs = layer(tf.constant(np.arange(12, dtype="float32").reshape(4, 3)),
                        training=True)
    assert outputs.shape == (4, 3)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_keep_keras_computation(backend):
    with fused_batch_norm(backend):
        assert layers.BatchNormalization.call is KERAS_CALL
