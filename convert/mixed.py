"""``int8-mixed``: full int8, except the layers that lose most, left in float until the
validation accuracy is within an accuracy budget (``--max-drop`` points) of the Keras model.

The layers are taken in the order the per-layer report ranks them (convert/quant_report.py),
one at a time, each candidate file made by TensorFlow's QuantizationDebugger with those layers
denylisted and scored on the run's validation split; the test split is never read. The search
ends at the first file within the budget, or with every layer in float, which is said.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def search(order: list[str], drop_with: Callable[[list[str]], float],
           max_drop: float) -> tuple[list[str], list[float]]:
    """The layers kept in float (a prefix of ``order``) and the validation drop in points of
    each step: layers are added in order until ``drop_with(kept) <= max_drop``, or all are."""
    kept: list[str] = []
    drops = [drop_with(kept)]
    while drops[-1] > max_drop and len(kept) < len(order):
        kept.append(order[len(kept)])
        drops.append(drop_with(kept))
    return kept, drops


def _accuracy_of_file(content: bytes, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of a float-input .tflite file on scaled images, with ai-edge-litert."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images.astype(np.float32))
    interpreter.invoke()
    scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def mixed_int8(model, calibration: np.ndarray, probe: np.ndarray, validation: tuple,
               max_drop: float) -> tuple[bytes, dict]:
    """The int8-mixed file (float32 input and output) and what its manifest entry says: the
    layers kept in float, the validation drop reached, whether the budget was met."""
    import tensorflow as tf

    from .quant_report import tflite_layers
    from .tflite_variants import int8_converter, representative

    images, labels = validation
    keras_accuracy = float(np.mean(np.argmax(model.predict(images, batch_size=250, verbose=0),
                                             axis=1) == labels))
    layers = tflite_layers(int8_converter(model, calibration, "float32", "float32"), probe)
    order = [layer["tensor"] for layer in sorted(layers, key=lambda x: x["damage_rank"])]
    made: dict[tuple, bytes] = {}

    def drop_with(kept: list[str]) -> float:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=int8_converter(model, calibration, "float32", "float32"),
            debug_dataset=representative(probe),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=list(kept) or None))
        made[tuple(kept)] = debugger.get_nondebug_quantized_model()
        return 100 * (keras_accuracy - _accuracy_of_file(made[tuple(kept)], images, labels))

    kept, drops = search(order, drop_with, max_drop)
    return made[tuple(kept)], {
        "max_drop_points": max_drop, "float_layers": kept, "layers": len(order),
        "validation_images": int(len(labels)), "validation_accuracy_keras": keras_accuracy,
        "validation_drop_points": round(drops[-1], 4),
        "drops_by_step": [round(drop, 4) for drop in drops],
        "budget_met": drops[-1] <= max_drop}
