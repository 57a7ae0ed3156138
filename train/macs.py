"""Multiply-accumulate count of a Keras model's inference, the cost measure of tiny-ML papers
(MLPerf Tiny quotes 12.5M MACs for its ResNet-8): convolutions and dense layers only, one MAC
per weight per output position; BatchNorm, activations, pooling and additions are not
counted."""
from __future__ import annotations

import math

import keras
from keras import layers


def layer_macs(layer: keras.layers.Layer) -> int:
    """MACs of one layer for one image (0 for layers without weights to multiply)."""
    if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
        # A depthwise kernel is (kh, kw, channels, multiplier): one MAC per weight too.
        return math.prod(layer.output.shape[1:3]) * math.prod(layer.kernel.shape)
    if isinstance(layer, layers.Dense):
        return math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1] or (1,))
    return 0


def count_macs(model: keras.Model) -> int:
    """Total MACs of one forward pass of one image."""
    return sum(layer_macs(layer) for layer in model.layers)
