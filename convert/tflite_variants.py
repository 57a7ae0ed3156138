"""Keras model -> TFLite flatbuffers with the LiteRT converter (TensorFlow's TFLiteConverter).

Each function returns the model as bytes. Full-integer variants are calibrated on float32
images already scaled by ``edge_runtime.preprocess.scale_pixels``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _converter(model):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def representative(images: np.ndarray) -> Callable:
    """The images one at a time, as the converter (and its quantization debugger) read
    them: the converter records min/max over all of them."""
    def generate():
        for image in images:
            yield [image[None].astype(np.float32)]
    return generate


def float32(model, calibration=None) -> bytes:
    """The float graph as it is (the accuracy reference for every other variant)."""
    return _converter(model).convert()


def float16(model, calibration=None) -> bytes:
    """Weights stored as float16 (half the size); computed in float32 on most CPUs."""
    import tensorflow as tf

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def dynamic_int8(model, calibration=None) -> bytes:
    """int8 weights, float activations quantized on the fly: no calibration data needed."""
    import tensorflow as tf

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def full_int8(model, calibration: np.ndarray, input_type: str = "int8",
              output_type: str = "int8", per_channel: bool = True) -> bytes:
    """Every tensor int8, calibrated on ``calibration`` (``int8_converter``)."""
    return int8_converter(model, calibration, input_type, output_type, per_channel).convert()


def int8_converter(model, calibration: np.ndarray, input_type: str = "int8",
                   output_type: str = "int8", per_channel: bool = True):
    """The converter of a full-integer file, calibrated on ``calibration``; weights get a scale
    per output channel, or one per tensor with ``per_channel=False``.

    int8 input and output is the fast path for XNNPACK; uint8 input with float32 output is what
    MediaPipe's ImageClassifier accepts (docs/dependencies.md). Per-channel scales cost 12 bytes
    per channel of every weight and bias tensor (22% of a ds_cnn-w0.75 file), which per-tensor
    scales save.
    """
    import tensorflow as tf

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    types = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
    converter.inference_input_type = types[input_type]
    converter.inference_output_type = types[output_type]
    # A private converter attribute (TensorFlow 2.21 has no public one for this); the file it
    # makes is plain int8 TFLite that every interpreter runs.
    converter._experimental_disable_per_channel = not per_channel
    return converter


def int16x8(model, calibration: np.ndarray) -> bytes:
    """int16 activations with int8 weights (the converter's 16x8 mode), calibrated on
    ``calibration``, float32 input and output: finer activations than int8 where their range is
    wide, at about int8's size; XNNPACK has no int16 kernels, so it runs on the interpreter's
    own (docs/conversion.md)."""
    import tensorflow as tf

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(calibration)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter.convert()


def mediapipe_uint8(model, calibration_pixels: np.ndarray) -> bytes:
    """Full-integer model for MediaPipe's ImageClassifier: uint8 input taking raw 0-255
    pixels (MediaPipe feeds them so and ignores normalization metadata for uint8 inputs), the
    1/255 scaling baked into the graph, float32 probabilities out (docs/dependencies.md).

    ``calibration_pixels`` are unscaled (0-255) float images.
    """
    import keras

    from edge_runtime.preprocess import NORM_MEAN, NORM_STD

    pixels = keras.Input(shape=model.input_shape[1:], name="pixels")
    scaled = keras.layers.Rescaling(1.0 / NORM_STD, offset=-NORM_MEAN / NORM_STD,
                                    name="scale_pixels")(pixels)
    wrapped = keras.Model(pixels, model(scaled), name=f"{model.name}_uint8_input")
    # A black and a white frame pin the input range to exactly 0..255, so the uint8 input's
    # quantization is the identity (scale 1, zero point 0) whatever the sample holds.
    extremes = np.stack([np.zeros_like(calibration_pixels[0]),
                         np.full_like(calibration_pixels[0], 255.0)])
    return full_int8(wrapped, np.concatenate([extremes, calibration_pixels]),
                     input_type="uint8", output_type="float32")
