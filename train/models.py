"""Model builders, backend-agnostic Keras 3 (no ``tf.*``): they train under TensorFlow, JAX and
PyTorch. The saved models hold no augmentation or other training-only random layers except
Dropout, which is inert at inference and converts cleanly.
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from edge_runtime.errors import UserError


# TensorFlow 2.21's oneDNN CPU kernel for the weight gradient of a strided 1x1 convolution
# corrupts memory when the convolution has fewer input channels than this (measured on an
# AVX-512 AMD EPYC: 8 and 12 channels crashed the process on odd-sized batches, 8 also on even
# ones with images of 46 pixels or more; 16 never did, nor TF_ENABLE_ONEDNN_OPTS=0).
# Narrower projections subsample first; it costs their int8 files 1.4 to 4.6 us per image
# (docs/training.md).
STRIDED_PROJECTION_MIN_CHANNELS = 16


def _channels(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


def seed_cnn(input_shape: tuple, num_classes: int, width: float = 1.0) -> keras.Model:
    """The reference project's 3-block CNN (357,706 parameters at width 1 with 10 classes).

    Conv 32/64/128 (3x3, same, ReLU) each followed by BatchNorm and 2x2 max-pooling, then
    Dense 128 (ReLU), Dropout 0.5 and a softmax. ``width`` scales every layer's units.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for block, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(_channels(filters, width), 3, padding="same", activation="relu",
                          name=f"conv{block}")(x)
        x = layers.BatchNormalization(name=f"bn{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(_channels(128, width), activation="relu", name="dense")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def resnet8(input_shape: tuple, num_classes: int, width: float = 1.0) -> keras.Model:
    """MLPerf Tiny image-classification ResNet-8 (78,666 parameters at width 1, 10 classes).

    A 3x3 stem of 16 filters, three residual stacks of 16/32/64 filters (the last two stride 2
    with a 1x1 projection shortcut), 8x8 average pooling and a softmax, as in
    mlcommons/tiny's ``resnet_v1_eembc``. Its L2 kernel regularizer is replaced by the
    recipe's weight decay. A projection from fewer than 16 channels (at widths below 1)
    takes every second pixel (a 1x1 max-pooling of stride 2) and then applies a 1x1
    convolution: the same numbers as the reference's strided one, which TensorFlow cannot
    train safely on a CPU (STRIDED_PROJECTION_MIN_CHANNELS).
    """
    def conv(x, filters, stride, name, kernel=3):
        return layers.Conv2D(filters, kernel, strides=stride, padding="same",
                             kernel_initializer="he_normal", name=name)(x)

    inputs = keras.Input(shape=input_shape, name="image")
    x = conv(inputs, _channels(16, width), 1, "stem_conv")
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for stack, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        filters = _channels(filters, width)
        y = conv(x, filters, stride, f"stack{stack}_conv1")
        y = layers.BatchNormalization(name=f"stack{stack}_bn1")(y)
        y = layers.Activation("relu", name=f"stack{stack}_relu1")(y)
        y = conv(y, filters, 1, f"stack{stack}_conv2")
        y = layers.BatchNormalization(name=f"stack{stack}_bn2")(y)
        if stride != 1:
            projection_stride = stride
            if x.shape[-1] < STRIDED_PROJECTION_MIN_CHANNELS:
                x = layers.MaxPooling2D(1, strides=stride, padding="same",
                                        name=f"stack{stack}_subsample")(x)
                projection_stride = 1
            x = conv(x, filters, projection_stride, f"stack{stack}_shortcut", kernel=1)
        x = layers.Add(name=f"stack{stack}_add")([x, y])
        x = layers.Activation("relu", name=f"stack{stack}_relu2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def ds_cnn(input_shape: tuple, num_classes: int, width: float = 1.0) -> keras.Model:
    """A depthwise-separable CNN designed for small devices (MobileNet-style blocks sized for
    32 x 32 images): a 3x3 stem of 32 filters, then five blocks of depthwise 3x3 + BatchNorm
    + ReLU and pointwise 1x1 + BatchNorm + ReLU with 64, 128 (stride 2), 128, 256 (stride 2)
    and 256 filters, global average pooling and a softmax. Depthwise and 1x1 convolutions are
    the operations int8 kernels on Arm run fastest per MAC.
    """
    def bn_relu(x, name):
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(_channels(32, width), 3, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = bn_relu(x, "stem")
    for block, (filters, stride) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1)),
                                              start=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   name=f"block{block}_depthwise")(x)
        x = bn_relu(x, f"block{block}_depthwise")
        x = layers.Conv2D(_channels(filters, width), 1, use_bias=False,
                          name=f"block{block}_pointwise")(x)
        x = bn_relu(x, f"block{block}_pointwise")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "seed_cnn": seed_cnn,
    "resnet8": resnet8,
    "ds_cnn": ds_cnn,
}


def build_model(arch: str, input_shape: tuple, num_classes: int, width: float) -> keras.Model:
    """Build ``arch`` by name; an unknown name or a non-positive width is a UserError."""
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown --arch {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    if not width > 0:
        raise UserError(f"--width must be positive, got {width}")
    return ARCHITECTURES[arch](input_shape, num_classes, width)
