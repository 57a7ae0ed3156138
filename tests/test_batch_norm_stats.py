"""BatchNorm statistics recomputed after a training too short for their moving averages."""
import numpy as np

from edgekit.train.batch_norm_stats import recompute_statistics, unsettled_layers


def two_norm_model():
    import keras

    inputs = keras.Input((4, 4, 2))
    first = keras.layers.BatchNormalization(name="first")(inputs)
    scaled = keras.layers.Conv2D(2, 1, use_bias=False, name="double",
                                 kernel_initializer=keras.initializers.Constant(1.0))(first)
    second = keras.layers.BatchNormalization(name="second")(scaled)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(second))


def test_moving_averages_that_still_hold_their_starting_values_are_the_unsettled_ones():
    model = two_norm_model()
    assert [layer.name for layer in unsettled_layers(model, 100)] == ["first", "second"]
    assert unsettled_layers(model, 700) == []  # 0.99 ** 700 < 1e-3: CIFAR-10's two epochs


def test_each_layer_gets_the_statistics_of_its_inputs_at_inference():
    rng = np.random.default_rng(0)
    images = (rng.normal(3.0, 2.0, (600, 4, 4, 2)) * [1.0, 0.5]).astype(np.float32)
    model = two_norm_model()
    recompute_statistics(model, unsettled_layers(model, 10), images)

    first, second = model.get_layer("first"), model.get_layer("second")
    pixels = images.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(first.moving_mean.numpy(), pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), pixels.var(0), rtol=1e-4)
    # The second layer sees the first one's output as inference computes it with the new
    # statistics: each channel normalized, then the 1x1 convolution sums the two channels.
    normalized = (pixels - pixels.mean(0)) / np.sqrt(pixels.var(0) + first.epsilon)
    summed = normalized.sum(axis=1)
    np.testing.assert_allclose(second.moving_mean.numpy(), [summed.mean()] * 2, atol=1e-4)
    np.testing.assert_allclose(second.moving_variance.numpy(), [summed.var()] * 2, rtol=1e-3)
