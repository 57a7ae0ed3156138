"""``int8-mixed`` and ``onnx-int8-mixed``: full int8, except the layers that cost most accuracy,
left in float until the validation accuracy is within an accuracy budget (``--max-drop``
points) of the Keras model, keeping as many multiply-accumulates in int8 as the search finds.

The candidates are the quantized layers of the variant's per-layer report
(convert/quant_report.py), those without error of their own too: a float layer's output is
quantized again where an int8 layer reads it, so a tensor with an outlier range stops hurting
only once its readers, pooling included, are float too (tests/test_mixed.py). Every
candidate file is made by the libraries' own switch (TensorFlow's QuantizationDebugger with
the layers denylisted; ONNX Runtime's quantize_static with the nodes excluded) and scored on
the run's validation split; the test split is never read. The search (``search``):

1. each candidate alone in float: if some meet the budget, the one with the fewest MACs wins;
2. otherwise the candidates are kept in float together, the one that bought back most alone
   first (fewer MACs first on ties), until the budget is met;
3. then each float layer, the most MACs first, goes back to int8 if the budget still holds
   without it.

Ordering by the report's ranking alone kept the reference CNN's conv2 (45% of its MACs) in
float where conv1 alone (8%) met the same budget (docs/results.md, "int8-mixed on the
reference CNN"): a layer's own error does not say what keeping it float buys at the output.
Steps 1 and 3 cost one file per candidate and per float layer, about 2 s each on that CNN.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

def search(candidates: list[str], macs: dict[str, int],
           drop_with: Callable[[list[str]], float], max_drop: float) -> tuple[list[str], list]:
    """The layers to keep in float and every trial as (float layers, validation drop in
    points), in the order tried. ``candidates`` are in the report's order of damage (ties'
    last resort); ``drop_with(layers)`` scores the file with ``layers`` in float. An empty
    list when full int8 is within ``max_drop``; every candidate when nothing meets it."""
    trials: list = []
    known: dict[tuple, float] = {}

    def tried(layers: list[str]) -> float:
        key = tuple(sorted(layers))
        if key not in known:  # a set measured once is not made again
            known[key] = drop_with(layers)
            trials.append((list(layers), known[key]))
        return known[key]

    if tried([]) <= max_drop or not candidates:
        return [], trials
    rank = {name: index for index, name in enumerate(candidates)}
    alone = {name: tried([name]) for name in candidates}
    meeting = [name for name in candidates if alone[name] <= max_drop]
    if meeting:
        return [min(meeting, key=lambda name: (macs.get(name, 0), alone[name], rank[name]))], \
            trials
    kept: list[str] = []
    for name in sorted(candidates, key=lambda name: (alone[name], macs.get(name, 0),
                                                     rank[name])):
        kept.append(name)
        if len(kept) > 1 and tried(kept) <= max_drop:
            break
    else:
        return kept, trials
    # The most MACs first; on ties the one added last, which bought back least alone.
    for name in sorted(reversed(kept), key=lambda name: -macs.get(name, 0)):
        fewer = [layer for layer in kept if layer != name]
        if fewer and tried(fewer) <= max_drop:
            kept = fewer
    return kept, trials


def drop_points(keras_right: int, file_right: int, images: int) -> float:
    """Accuracy points the file loses against Keras, from the images each got right: counted
    in images, not as a difference of accuracies, where 100 * (0.8358 - 0.8348) is
    0.10000000000000009, over a budget of 0.1 that five images of 5,000 meet exactly."""
    return 100 * (keras_right - file_right) / images


def _search_facts(kept: list[str], trials: list, candidates: list[str], macs: dict[str, int],
                  validation: tuple, keras_accuracy: float, max_drop: float) -> dict:
    """What the variant's manifest entry says of its search."""
    drop = next(d for layers, d in reversed(trials) if sorted(layers) == sorted(kept))
    total = sum(macs.values())
    return {"max_drop_points": max_drop, "float_layers": kept, "layers": len(candidates),
            "validation_images": int(len(validation[1])),
            "validation_accuracy_keras": keras_accuracy,
            "validation_drop_points": round(drop, 4),
            "int8_mac_share": round(1 - sum(macs.get(name, 0) for name in kept) / total, 4)
            if total else None,
            "trials": [{"float_layers": layers, "validation_drop_points": round(d, 4)}
                       for layers, d in trials],
            "budget_met": drop <= max_drop}


def _mixed(model, validation: tuple, max_drop: float, layers: list[dict], full: bytes,
           macs: dict[str, int], make: Callable[[list[str]], bytes],
           suffix: str) -> tuple[bytes, dict]:
    """Search with ``make(float layers)`` building each candidate file (``full``, the file
    with every layer quantized, already made); the chosen file and the facts. ``layers``: the
    variant's per-layer report, every layer a candidate."""
    from .verify import predict_file

    images, labels = validation
    keras_right = int(np.sum(np.argmax(model.predict(images, batch_size=250, verbose=0),
                                       axis=1) == labels))
    candidates = [layer["tensor"] for layer in sorted(layers, key=lambda x: x["damage_rank"])]
    made: dict[tuple, bytes] = {}
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"candidate{suffix}"

        def drop_with(kept: list[str]) -> float:
            made[tuple(sorted(kept))] = content = make(kept) if kept else full
            path.write_bytes(content)
            scores, _ = predict_file(path, images)
            return drop_points(keras_right, int(np.sum(np.argmax(scores, axis=1) == labels)),
                               len(labels))

        kept, trials = search(candidates, macs, drop_with, max_drop)
    return made[tuple(sorted(kept))], _search_facts(kept, trials, candidates, macs, validation,
                                                    keras_right / len(labels), max_drop)


def mixed_int8(model, calibration: np.ndarray, probe: np.ndarray, validation: tuple,
               max_drop: float) -> tuple[bytes, dict]:
    """The int8-mixed file (float32 input and output) and what its manifest entry says: the
    layers kept in float, the validation drop reached, the share of MACs left in int8, every
    trial, whether the budget was met."""
    import tensorflow as tf

    from .layer_macs import tflite_layer_macs
    from .quant_report import tflite_layers
    from .tflite_variants import int8_converter, representative

    def make(kept: list[str]) -> bytes:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=int8_converter(model, calibration, "float32", "float32"),
            debug_dataset=representative(probe),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=list(kept) or None))
        return debugger.get_nondebug_quantized_model()

    layers = tflite_layers(int8_converter(model, calibration, "float32", "float32"), probe)
    full = make([])
    return _mixed(model, validation, max_drop, layers, full, tflite_layer_macs(full), make,
                  ".tflite")


def mixed_onnx_int8(model, calibration: np.ndarray, probe: np.ndarray, validation: tuple,
                    max_drop: float) -> tuple[bytes, dict]:
    """The onnx-int8-mixed file and its facts, as ``mixed_int8``: onnx-int8 (static QDQ,
    per-channel weights) with the worst nodes excluded from quantization."""
    import onnx

    from . import onnx_variants
    from .layer_macs import onnx_layer_macs
    from .quant_report import onnx_layers

    float_model = onnx_variants.float32(model)
    full = onnx_variants.int8_qdq(float_model, calibration)
    graph = onnx.load_from_string(full).graph
    # The report names tensors; quantize_static excludes nodes: each tensor's producer. The
    # candidates are the tensors the QDQ model quantizes (not the shape arithmetic).
    producers = {node.output[0]: node for node in graph.node}
    with tempfile.TemporaryDirectory() as work:
        layers = [layer for layer in onnx_layers(float_model, full, probe, work)
                  if layer["tensor"] in producers and layer["scale"] is not None]

    def make(kept: list[str]) -> bytes:
        return onnx_variants.int8_qdq(float_model, calibration,
                                      exclude=[producers[tensor].name for tensor in kept])

    return _mixed(model, validation, max_drop, layers, full, onnx_layer_macs(full), make,
                  ".onnx")
