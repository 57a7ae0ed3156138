"""Quantization-aware training: the trained Keras 3 model rebuilt in tf_keras (Keras 2, which
tensorflow-model-optimization requires; docs/dependencies.md), weights copied layer by
layer, wrapped with fake-quantization and fine-tuned briefly, then converted to full-integer int8.

Runs only inside a conversion child process: importing tfmot switches TensorFlow to legacy
Keras for the whole process.
"""
from __future__ import annotations

from typing import Optional, TextIO

import numpy as np

from .graph import endpoint_name, layer_parents

# Constructor arguments that define a layer's computation; initializers, regularizers and
# dtype policies are left out (weights are copied, and the configs differ between Keras 2/3).
_STRUCTURAL_KEYS = {
    "name", "filters", "kernel_size", "strides", "padding", "activation", "use_bias",
    "dilation_rate", "groups", "units", "axis", "momentum", "epsilon", "center", "scale",
    "pool_size", "rate", "offset", "depth_multiplier", "data_format",
}


def _plain(value):
    """A Keras 3 config value as tf_keras takes it: Keras 3 serializes arrays (the folded
    shifts) as dicts; a plain list keeps the tf_keras layer clonable by tfmot."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        return list(value["config"]["value"])
    return value


def rebuild_in_tf_keras(model):
    """The same functional graph in tf_keras, with the Keras 3 model's weights."""
    import tf_keras

    config = model.get_config()
    outputs = {}
    for entry in config["layers"]:
        name = entry["name"]
        if entry["class_name"] == "InputLayer":
            outputs[name] = tf_keras.Input(shape=tuple(model.input_shape[1:]), name=name)
            continue
        kwargs = {k: _plain(v) for k, v in entry["config"].items() if k in _STRUCTURAL_KEYS}
        layer = getattr(tf_keras.layers, entry["class_name"])(**kwargs)
        inputs = [outputs[p] for p in layer_parents(entry)]
        outputs[name] = layer(inputs if len(inputs) > 1 else inputs[0])
    rebuilt = tf_keras.Model(outputs[endpoint_name(config["input_layers"])],
                             outputs[endpoint_name(config["output_layers"])], name=model.name)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            rebuilt.get_layer(layer.name).set_weights(weights)
    return rebuilt


def _annotate(model, per_channel: bool):
    """Mark every layer for quantization, convolution weights with a scale per output channel
    or (``per_channel=False``) one per tensor, as the converter will store them. Layers tfmot
    has no pattern for, BatchNormalization left in the graph (none after folding, fold.py) and
    the per-channel shifts that folding leaves, get a config that fake-quantizes their output
    only, as the int8 converter will compute them."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    quantize = tfmot.quantization.keras

    class OutputOnly(quantize.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantize.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    def annotate(layer):
        if isinstance(layer, (tf_keras.layers.BatchNormalization, tf_keras.layers.Rescaling)):
            return quantize.quantize_annotate_layer(layer, quantize_config=OutputOnly())
        return quantize.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    scheme = quantize.default_8bit.Default8BitQuantizeScheme(disable_per_axis=not per_channel)
    with quantize.quantize_scope({"OutputOnly": OutputOnly}):
        return quantize.quantize_apply(annotated, scheme)


def quantization_aware_int8(model, epochs_data, epochs: int, learning_rate: float,
                            validation: tuple, calibration: np.ndarray, seed: int = 0,
                            label_smoothing: float = 0.0, per_channel: bool = True,
                            progress: Optional[tuple[str, TextIO]] = None
                            ) -> tuple[bytes, dict, bytes]:
    """Fine-tune a fake-quantized copy for ``epochs`` with the training loss (same label
    smoothing) and a cosine-decaying rate from ``learning_rate``, then convert it to int8
    TFLite (int8 input and output), weight scales per output channel or, with
    ``per_channel=False``, one per tensor (the smaller file). ``progress``: (label, stream)
    for a bar per epoch on a terminal and a line per epoch (train's EpochBars). Returns the
    flatbuffer, the fine-tuning history, and the fine-tuned weights as a float32 flatbuffer
    (the reference of the file's per-layer report)."""
    import tensorflow as tf
    import tf_keras

    from edgekit.common.progress import EpochBars

    # Defined here: tf_keras is imported in the conversion child only.
    class FineTuningProgress(EpochBars, tf_keras.callbacks.Callback):
        """EpochBars as a tf_keras callback."""

    # tf_keras' Dropout draws from TensorFlow's global generator: unseeded, two conversions
    # of the same model differed by 0.5 points of test accuracy (measured).
    tf_keras.utils.set_random_seed(seed)

    rebuilt = rebuild_in_tf_keras(model)
    quantized = _annotate(rebuilt, per_channel)
    schedule = tf_keras.optimizers.schedules.CosineDecay(learning_rate,
                                                         epochs * epochs_data.steps())
    quantized.compile(optimizer=tf_keras.optimizers.Adam(schedule),
                      loss=tf_keras.losses.CategoricalCrossentropy(
                          label_smoothing=label_smoothing),
                      metrics=["accuracy"])
    # Fine-tuning takes minutes on a full data set: the user sees it move.
    callbacks = [] if progress is None else [
        FineTuningProgress(epochs, epochs_data.steps(), f"{progress[0]}: fine-tuning ",
                           progress[1])]
    history = quantized.fit(epochs_data.batches(0), steps_per_epoch=epochs_data.steps(),
                            epochs=epochs, validation_data=validation, verbose=2,
                            callbacks=callbacks)
    if per_channel:
        converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
    else:
        # The converter takes no per-tensor weight ranges from the fake quantization of a
        # convolution it fuses with its bias and ReLU (every one, once BN is folded): it
        # re-quantized them per channel, with or without _experimental_disable_per_channel
        # (measured: 24 to 192 scales per weight tensor of ds_cnn; tfmot issue 865). So the
        # fine-tuned weights are calibrated per tensor instead, on the grid the fine-tuning
        # used: both scale a tensor symmetrically by its largest magnitude.
        _copy_fine_tuned_weights(quantized, rebuilt)
        converter = tf.lite.TFLiteConverter.from_keras_model(rebuilt)
        converter._experimental_disable_per_channel = True  # as tflite_variants.full_int8
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    content = converter.convert()
    if per_channel:
        _copy_fine_tuned_weights(quantized, rebuilt)
    # The same network in float, the per-layer report's reference (quant_report.py).
    fine_tuned_float = tf.lite.TFLiteConverter.from_keras_model(rebuilt).convert()
    return content, {k: [float(v) for v in vals] for k, vals in history.history.items()}, \
        fine_tuned_float


def _copy_fine_tuned_weights(quantized, plain) -> None:
    """Set every weight of ``plain`` to the value fine-tuning gave it in ``quantized``. The
    wrappers keep each layer's variables under the layer's own names (``block1_pointwise/
    kernel:0``) beside their range variables, and a wrapped layer's ``get_weights`` omits the
    kernels it fake-quantizes, so the variables are matched by name."""
    tuned = {variable.name: variable for variable in quantized.weights}
    for variable in plain.weights:
        variable.assign(tuned[variable.name])
