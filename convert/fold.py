"""An equivalent float graph that quantizes better: BatchNormalization folded out of the
reference CNN's "Conv(ReLU) -> BN" blocks.

With BN after the ReLU the converter cannot fold BN into the convolution, so the convolution's
output is quantized per tensor while its channels still have very different ranges, and BN
becomes a Mul and an Add that are requantized again. Writing BN(y) = a*y + b per channel:

- the size ``|a|`` moves into the convolution (kernel and bias times ``|a|``), exact because
  ReLU(|a|*x) = |a|*ReLU(x);
- the sign and the shift ``b`` stay as a per-channel ``sign * y + b`` (a Rescaling layer whose
  scale is 1, or +-1 per channel, which int8 holds exactly), or, when every sign is positive and
  the block feeds a Dense layer only through pooling and flattening, the shift goes into that
  Dense layer's bias: max-pooling commutes with adding a per-channel constant, so this is exact
  too. (Through a 'same'-padded convolution it would not be: the zero padding would meet the
  shift. Through max-pooling a negative sign would not either.)
- with ``into_convolutions=True``, BN straight after a convolution without activation (ds_cnn's
  and ResNet-8's "Conv -> BN -> ReLU") becomes that convolution's kernel and bias, as the TFLite
  converter does by itself. Quantization-aware training needs it done beforehand: tfmot folds
  no BN that carries its own quantize config, and the int8 file then keeps every such BN as a
  Mul and an Add (measured: twice the latency of the post-training file).
- a dead unit (its ReLU never fired in training, so BN's moving variance is about zero) outputs
  the constant ``BN(mean) = beta``; its convolution channel is zeroed and ``beta`` becomes its
  shift. Left in place, such a channel's scale ``gamma / sqrt(eps)`` is hundreds of times the
  live channels' and ruins the per-tensor int8 range of everything quantized with it (seen: a
  seed_cnn at width 2 fell from 84.7% to 30.1% top-1 as int8).
"""
from __future__ import annotations

import numpy as np

from .graph import endpoint_name, layer_parents

_ACTIVATED = {"Conv2D", "Dense", "DepthwiseConv2D"}
_SHIFT_TRANSPARENT = {"MaxPooling2D", "Flatten"}  # commute with a per-channel constant
# Moving variance below which a unit counts as dead: its output then varies by at most
# sqrt(1e-8) = 1e-4 around the mean before BN, negligible next to int8 steps.
DEAD_UNIT_VARIANCE = 1e-8


def fold_batchnorm(model, into_convolutions: bool = False):
    """Return an equivalent Keras model with post-ReLU BatchNormalization folded away where
    exact (and, with ``into_convolutions``, BN after a convolution without activation folded
    into it), and the number of BN layers folded. The input model is not changed."""
    import keras

    config = model.get_config()
    entries = {e["name"]: e for e in config["layers"]}
    parents = {name: layer_parents(e) for name, e in entries.items()}
    consumers: dict[str, list[str]] = {name: [] for name in entries}
    for name, ps in parents.items():
        for p in ps:
            consumers[p].append(name)
    weights = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}

    # BN name -> (per-channel sign, per-channel shift) left after folding
    leftovers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    absorbed = set()  # BN layers (or their shifts) that vanish into another layer
    merged = 0        # of which BN layers folded into the convolution before them
    for name, entry in entries.items():
        if entry["class_name"] != "BatchNormalization" or len(parents[name]) != 1:
            continue
        source = parents[name][0]
        source_entry = entries[source]
        activation = source_entry["config"].get("activation")
        if (source_entry["class_name"] not in _ACTIVATED or len(consumers[source]) != 1
                or activation not in (("relu", "linear") if into_convolutions else ("relu",))):
            continue
        if activation == "relu" and not source_entry["config"].get("use_bias", True):
            continue
        gamma, beta, mean, variance = weights[name]
        scale = gamma / np.sqrt(variance + entry["config"]["epsilon"])
        shift = beta - scale * mean
        dead = variance < DEAD_UNIT_VARIANCE
        shift = np.where(dead, beta, shift)
        if activation == "linear":  # BN(conv(x)) is one convolution: the sign goes in too
            kernel, *bias = weights[source]
            size = np.where(dead, 0.0, scale)
            bias = bias[0] * size if bias else 0.0
            weights[source] = [_scale_outputs(source_entry["class_name"], kernel, size),
                               bias + shift]
            source_entry["config"]["use_bias"] = True
            absorbed.add(name)
            merged += 1
            continue
        size = np.where(dead, 0.0, np.abs(scale))
        sign = np.where((scale < 0) & ~dead, -1.0, 1.0)
        kernel, bias = weights[source]
        weights[source] = [kernel * size, bias * size]
        leftovers[name] = (sign, shift)

    # Push a shift through pooling/flattening into a Dense bias where the path is private.
    for name, (sign, shift) in leftovers.items():
        if np.any(sign < 0):
            continue
        node = name
        while (len(consumers[node]) == 1
               and entries[consumers[node][0]]["class_name"] in _SHIFT_TRANSPARENT):
            node = consumers[node][0]
        if len(consumers[node]) == 1 and entries[consumers[node][0]]["class_name"] == "Dense":
            dense = consumers[node][0]
            kernel, bias = weights[dense]
            repeats = kernel.shape[0] // len(shift)
            weights[dense] = [kernel, bias + np.tile(shift, repeats) @ kernel]
            absorbed.add(name)

    outputs: dict[str, object] = {}
    renamed: dict[str, str] = {}   # removed layer -> the layer whose output replaces it
    built_layers = {}
    for entry in config["layers"]:
        name = entry["name"]
        if entry["class_name"] == "InputLayer":
            outputs[name] = keras.Input(shape=tuple(model.input_shape[1:]), name=name)
            continue
        inputs = [outputs[renamed.get(p, p)] for p in parents[name]]
        if name in absorbed:
            renamed[name] = renamed.get(parents[name][0], parents[name][0])
            continue
        if name in leftovers:
            sign, shift = leftovers[name]
            layer = keras.layers.Rescaling(1.0 if np.all(sign > 0) else sign.astype(np.float32),
                                           offset=shift.astype(np.float32),
                                           name=f"{name}_shift")
        else:
            layer = keras.layers.deserialize(
                {k: entry[k] for k in ("module", "class_name", "config", "registered_name")})
            built_layers[name] = layer
        outputs[name] = layer(inputs if len(inputs) > 1 else inputs[0])
    output = endpoint_name(config["output_layers"])
    folded = keras.Model(outputs[endpoint_name(config["input_layers"])],
                         outputs[renamed.get(output, output)], name=f"{model.name}_bn_folded")
    for name, layer in built_layers.items():
        if weights[name]:
            layer.set_weights(weights[name])
    return folded, len(leftovers) + merged


def _scale_outputs(kind: str, kernel: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``kernel`` with each output channel multiplied by its ``scale``: the last axis of a
    Conv2D or Dense kernel; of a DepthwiseConv2D kernel (h, w, in, multiplier), output channel
    ``i * multiplier + m`` is entry (i, m)."""
    if kind == "DepthwiseConv2D":
        return kernel * scale.reshape(kernel.shape[-2:])
    return kernel * scale
