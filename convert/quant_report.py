"""Where quantization loses accuracy: for each layer of an integer variant, the error between
its float and its quantized activations on the probe images, ranked by damage.

TFLite files are measured with TensorFlow's QuantizationDebugger, which quantizes the same
graph with the same calibration as the variant and compares every quantized operator's output
with the float operator's given the same (dequantized) input: each layer's own error, not the
error it inherits. ONNX files are measured with ONNX Runtime's qdq_loss_debug, which runs the
float and the QDQ model with every intermediate tensor as an output and pairs them by name: the
error accumulated up to each tensor. Both are the libraries' own instrumentation; the metrics
below are computed from the tensors they return:

- ``rmse_relative``: the RMS error divided by the float tensor's range (max - min);
- ``snr_db``: 10 log10(sum float^2 / sum error^2), higher is better;
- ``cosine``: cosine similarity of the flattened float and dequantized tensors;
- ``channel_snr_db``: the mean over channels of each channel's SNR (each capped at 100 dB).
  Layers are ranked by it: a tensor's overall SNR is dominated by its largest channels, so one
  channel with an outlier range, which leaves the others a few quantization steps, hardly moves
  it, while the crushed channels' own SNR falls to near 0 dB.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Callable, Optional

import numpy as np


SNR_CAP_DB = 100.0
METRICS = ("rmse_relative", "snr_db", "cosine", "channel_snr_db")


def _stacked(values) -> np.ndarray:
    """The tensors of every probe image, one after another along the batch axis."""
    return np.concatenate([np.asarray(v, np.float64).reshape((-1,) + np.shape(v)[1:])
                           for v in values])


def _snr_db(signal: float, noise: float) -> float:
    return 10 * math.log10(signal / noise) if noise > 0 else math.inf


def error_metrics(reference: np.ndarray, measured: np.ndarray,
                  channel_axis: int = -1) -> dict[str, float]:
    """RMSE relative to the float range, SNR in dB, cosine similarity and mean per-channel SNR
    of two tensors of the same shape (channels along ``channel_axis``)."""
    reference = np.asarray(reference, np.float64)
    measured = np.asarray(measured, np.float64)
    channels = []
    if reference.ndim >= 2:
        by_channel = np.moveaxis(reference, channel_axis, 0).reshape(
            reference.shape[channel_axis], -1)
        errors = np.moveaxis(measured - reference, channel_axis, 0).reshape(by_channel.shape)
        channels = [min(_snr_db(float(np.sum(ref ** 2)), float(np.sum(err ** 2))), SNR_CAP_DB)
                    if np.any(ref) else (SNR_CAP_DB if not np.any(err) else 0.0)
                    for ref, err in zip(by_channel, errors)]
    reference, measured = np.ravel(reference), np.ravel(measured)
    error = measured - reference
    span = float(reference.max() - reference.min()) if reference.size else 0.0
    rmse = math.sqrt(float(np.mean(error ** 2))) if error.size else 0.0
    signal, noise = float(np.sum(reference ** 2)), float(np.sum(error ** 2))
    norms = float(np.linalg.norm(reference) * np.linalg.norm(measured))
    overall = min(_snr_db(signal, noise), SNR_CAP_DB)
    return {"rmse_relative": rmse / span if span > 0 else (0.0 if rmse == 0 else math.inf),
            "snr_db": overall,
            "cosine": float(np.dot(reference, measured) / norms) if norms > 0 else 1.0,
            "channel_snr_db": float(np.mean(channels)) if channels else overall}


def _direct_metric(name: str) -> Callable:
    # QuantizationDebugger hands each metric the float and quantized outputs of every debug
    # sample with the quantized tensor's scale and zero point.
    def metric(float_tensors, quant_tensors, scale, zero_point) -> float:
        reference, quantized = _stacked(float_tensors), _stacked(quant_tensors)
        return error_metrics(reference, (quantized - zero_point) * scale)[name]
    return metric


def ranked(layers: list[dict]) -> list[dict]:
    """The layers with their rank by damage (1: the lowest mean per-channel SNR)."""
    order = sorted(range(len(layers)), key=lambda i: (layers[i]["channel_snr_db"], i))
    for rank, index in enumerate(order, start=1):
        layers[index]["damage_rank"] = rank
    return layers


def tflite_layers(converter, probe: np.ndarray) -> list[dict]:
    """Per-layer errors of ``converter`` (configured for full-integer conversion, its
    representative dataset set) on the scaled ``probe`` images, in graph order."""
    import tensorflow as tf

    from .tflite_variants import representative

    dataset = representative(probe)
    debugging = tf.lite.experimental.QuantizationDebugger
    options = tf.lite.experimental.QuantizationDebugOptions
    debugger = debugging(converter=converter, debug_dataset=dataset)
    # Built from a converter, TensorFlow 2.21's debugger runs its model without keeping the
    # intermediate tensors, so a metric that reads the float and quantized tensors reads
    # buffers later layers overwrote (a conv1 whose float output looked constant). Built from
    # the debug model's bytes it keeps them.
    measuring = debugging(quant_debug_model_content=debugger.quant_model, debug_dataset=dataset,
                          debug_options=options(layer_direct_compare_metrics={
                              name: _direct_metric(name) for name in METRICS}))
    measuring.run()
    dump = io.StringIO()
    measuring.layer_statistics_dump(dump)
    layers = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        layers.append({"tensor": row["tensor_name"], "op": row["op_name"],
                       "scale": float(row["scale"]), "zero_point": int(float(row["zero_point"])),
                       **{name: float(row[name]) for name in METRICS},
                       "max_abs_error": float(row["max_abs_error"])})
    return ranked(layers)


def onnx_layers(float_model: bytes, qdq_model: bytes, probe: np.ndarray, work) -> list[dict]:
    """Per-tensor errors of an ONNX QDQ model against its float model on the scaled ``probe``
    images (ONNX Runtime's qdq_loss_debug), with the scale and zero point of the quantized
    tensor, in the QDQ graph's order."""
    from pathlib import Path

    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    class Images(CalibrationDataReader):
        def __init__(self, name: str):
            self.items = iter([{name: image[None].astype(np.float32)} for image in probe])

        def get_next(self) -> Optional[dict]:
            return next(self.items, None)

    paths = {}
    for name, content in (("float", float_model), ("qdq", qdq_model)):
        source, augmented = Path(work) / f"{name}.onnx", Path(work) / f"{name}-all.onnx"
        source.write_bytes(content)
        modify_model_output_intermediate_tensors(str(source), str(augmented))
        paths[name] = augmented
    input_name = onnx.load(str(Path(work) / "float.onnx")).graph.input[0].name
    float_values = collect_activations(str(paths["float"]), Images(input_name))
    qdq_values = collect_activations(str(paths["qdq"]), Images(input_name))
    # collect_activations flattens each tensor: ONNX's shape inference gives their shapes,
    # without which there are no channels.
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(Path(work) / "qdq.onnx")))
    shapes = {}
    for info in inferred.graph.value_info:
        dims = [dim.dim_value for dim in info.type.tensor_type.shape.dim][1:]
        if dims and all(dims):
            shapes[info.name] = tuple(dims)
    matching = create_activation_matching(qdq_values, float_values)
    qdq = onnx.load(str(Path(work) / "qdq.onnx"))
    constants = {init.name: numpy_helper.to_array(init) for init in qdq.graph.initializer}
    quantizers = {node.input[0]: node for node in qdq.graph.node
                  if node.op_type == "QuantizeLinear"}
    layers = []
    for tensor, pair in matching.items():
        if "float" not in pair:
            continue
        producer = next((node.op_type for node in qdq.graph.node if tensor in node.output), "?")
        quantizer = quantizers.get(tensor)
        scale = constants.get(quantizer.input[1]) if quantizer is not None else None
        zero = constants.get(quantizer.input[2]) if quantizer is not None and \
            len(quantizer.input) > 2 else None
        layer = {"tensor": tensor, "op": producer,
                 "scale": float(np.ravel(scale)[0]) if scale is not None else None,
                 "zero_point": int(np.ravel(zero)[0]) if zero is not None else None}
        shape = shapes.get(tensor)
        reference, measured = (np.stack(pair[key]).reshape((-1,) + shape) if shape is not None
                               else _stacked(pair[key]) for key in ("float", "post_qdq"))
        layer.update(error_metrics(reference, measured))
        if reference.ndim == 4:
            # tf2onnx leaves some 4-D tensors NHWC and makes others NCHW, and the names do
            # not say which: the channel view that shows more damage is the one reported.
            layer["channel_snr_db"] = min(layer["channel_snr_db"], error_metrics(
                reference, measured, channel_axis=1)["channel_snr_db"])
        layer["max_abs_error"] = float(np.max(np.abs(measured - reference)))
        layers.append(layer)
    return ranked(layers)


def _outputs_by_op(content: bytes, images: np.ndarray) -> list[tuple[str, dict, np.ndarray]]:
    """(operator, output tensor's details, its values) for every operator of a .tflite file
    run on ``images`` (fed through the input's quantization if it has one), in graph order;
    the QUANTIZE and DEQUANTIZE operators at the edges left out."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    feed = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(feed["index"], list(images.shape))
    interpreter.allocate_tensors()
    scale, zero = feed["quantization"]
    if scale:
        info = np.iinfo(feed["dtype"])
        images = np.clip(np.round(images / scale + zero), info.min, info.max)
    interpreter.set_tensor(feed["index"], images.astype(feed["dtype"]))
    interpreter.invoke()
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    outputs = []
    for node in interpreter._get_ops_details():  # no public API lists the operators
        if node["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        detail = tensors[node["outputs"][0]]
        outputs.append((node["op_name"], detail, interpreter.get_tensor(detail["index"])))
    return outputs


def tflite_file_layers(quantized: bytes, reference: bytes, probe: np.ndarray) -> list[dict]:
    """Per-layer errors of an integer .tflite file against a float .tflite file of the same
    network (the quantization-aware variants against their fine-tuned float weights) on the
    scaled ``probe`` images: the operators are paired in graph order by type, and each
    quantized output, dequantized, is compared with the float one: the error accumulated up to
    each layer, as for ONNX. QuantizationDebugger cannot measure these files: it quantizes by
    calibration itself and refuses a graph whose ranges come from fake quantization
    (docs/dependencies.md)."""
    float_ops = _outputs_by_op(reference, probe)
    layers, start = [], 0
    for op, detail, values in _outputs_by_op(quantized, probe):
        scale, zero = detail["quantization"]
        match = next((i for i in range(start, len(float_ops)) if float_ops[i][0] == op), None)
        if match is None or not scale:  # shape arithmetic is not quantized
            continue
        start = match + 1
        reference_values = float_ops[match][2]
        if reference_values.shape != values.shape:
            continue
        measured = (values.astype(np.float64) - zero) * scale
        layers.append({"tensor": detail["name"], "op": op, "scale": float(scale),
                       "zero_point": int(zero), **error_metrics(reference_values, measured),
                       "max_abs_error": float(np.max(np.abs(measured - reference_values)))})
    return ranked(layers)
