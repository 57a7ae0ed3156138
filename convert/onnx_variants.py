"""Keras model -> ONNX (tf2onnx), and float ONNX -> int8 QDQ (ONNX Runtime static quantization).

The ONNX input keeps the project's NHWC layout, so every runtime feeds the same arrays; tf2onnx's
transpose optimizer pushes the layout transposes to the graph's edges, where ONNX Runtime folds
them (``--inputs-as-nchw`` would instead change what callers must feed).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

OPSET = 17


def float32(model) -> bytes:
    """Convert with tf2onnx at opset 17; the input is named ``image`` (N, H, W, 3) float32."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def serve(image):
        return {"probabilities": model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    return proto.SerializeToString()


class _CalibrationReader:
    """Feeds calibration images one at a time, as ONNX Runtime's quantizer expects."""

    def __init__(self, input_name: str, images: np.ndarray):
        self.items = iter([{input_name: image[None].astype(np.float32)} for image in images])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # onnxruntime >= 1.16 may call it; a second pass is never needed here
        pass


def int8_qdq(float_model: bytes, calibration: np.ndarray, exclude: Sequence[str] = ()) -> bytes:
    """Static int8 quantization: pre-processing, then QDQ with signed int8 activations and
    weights (S8S8), per-channel weights, as ONNX Runtime recommends for CPUs. ``exclude``:
    names of nodes (of the pre-processed graph, as the QDQ model keeps them) left in float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "float.onnx").write_bytes(float_model)
        # ONNX's own shape inference is enough for these CNNs: the symbolic one changes no
        # output (the trained default seed_cnn on 1,000 test images, and seed_cnn, resnet8
        # and ds_cnn untrained on 200 random ones, each quantized both ways) and needs
        # sympy, which onnxruntime >= 1.32 no longer installs, so a fresh
        # `pip install .[convert]` failed this variant (docs/dependencies.md).
        quant_pre_process(str(work / "float.onnx"), str(work / "prepared.onnx"),
                          skip_symbolic_shape=True)
        input_name = onnx.load(str(work / "prepared.onnx")).graph.input[0].name
        quantize_static(str(work / "prepared.onnx"), str(work / "int8.onnx"),
                        _CalibrationReader(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=list(exclude))
        return (work / "int8.onnx").read_bytes()
