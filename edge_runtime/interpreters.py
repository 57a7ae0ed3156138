"""Thin wrappers over the interpreters a device may have: LiteRT (ai-edge-litert), the older
tflite-runtime, and ONNX Runtime. Each takes scaled float32 images (N, H, W, 3) and returns
float32 class probabilities, quantizing and dequantizing with the parameters stored in the
model itself (never assumed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .errors import UserError


class ModelLoadError(UserError):
    """A model file that cannot be loaded by its interpreter."""


def _tflite_interpreter_class():
    """LiteRT's Interpreter, else tflite-runtime's (for old Pi images); never TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise UserError("no TFLite interpreter installed: pip install ai-edge-litert "
                        "(or tflite-runtime on 32-bit Pi OS)") from None


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Float -> integer with the tensor's own (scale, zero point), rounded and clipped."""
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> float with the tensor's own (scale, zero point)."""
    return (values.astype(np.float32) - zero_point) * scale


class TFLiteModel:
    """A .tflite file run by LiteRT (or tflite-runtime), one image or a batch at a time."""

    def __init__(self, path: Path, threads: Optional[int] = None):
        interpreter_class, self.backend = _tflite_interpreter_class()
        try:
            self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: not a loadable TFLite model ({exc})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])

    def describe(self) -> dict:
        """dtype, shape and (scale, zero point) of the input and output tensors."""
        def tensor(details):
            scale, zero_point = details["quantization"]
            return {"name": details["name"], "dtype": np.dtype(details["dtype"]).name,
                    "shape": [int(d) for d in details["shape_signature"]],
                    "quantization": None if scale == 0 else
                    {"scale": float(scale), "zero_point": int(zero_point)}}
        return {"input": tensor(self.input), "output": tensor(self.output)}

    def _resize(self, batch: int) -> None:
        shape = list(self.input["shape"])
        shape[0] = batch
        self.interpreter.resize_tensor_input(self.input["index"], shape)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = batch

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for scaled float32 images (N, H, W, 3); integer models are fed raw
        pixel values as the model's input quantization demands."""
        images = np.asarray(images, np.float32)
        if len(images) != self.batch:
            self._resize(len(images))
        dtype = self.input["dtype"]
        if dtype == np.float32:
            feed = images
        else:
            scale, zero_point = self.input["quantization"]
            feed = quantize(images, scale, zero_point, dtype)
        self.interpreter.set_tensor(self.input["index"], feed)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] == np.float32:
            return raw.astype(np.float32)
        scale, zero_point = self.output["quantization"]
        return dequantize(raw, scale, zero_point)


class OnnxModel:
    """An .onnx file run by ONNX Runtime on the CPU."""

    def __init__(self, path: Path, threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is not installed: pip install onnxruntime") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{path}: not a loadable ONNX model ({exc})") from None
        self.backend = "onnxruntime"
        self.input_name = self.session.get_inputs()[0].name

    def describe(self) -> dict:
        """dtype and shape of the input and output tensors (QDQ models keep float IO)."""
        def tensor(node):
            dtype = node.type.replace("tensor(", "").rstrip(")")
            return {"name": node.name, "dtype": "float32" if dtype == "float" else dtype,
                    "shape": [d if isinstance(d, int) else -1 for d in node.shape],
                    "quantization": None}
        return {"input": tensor(self.session.get_inputs()[0]),
                "output": tensor(self.session.get_outputs()[0])}

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for scaled float32 images (N, H, W, 3)."""
        feed = {self.input_name: np.asarray(images, np.float32)}
        return np.asarray(self.session.run(None, feed)[0], np.float32)


def load_model(path: Path, threads: Optional[int] = None):
    """The right wrapper for a .tflite or .onnx file."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    if path.suffix == ".tflite":
        return TFLiteModel(path, threads)
    if path.suffix == ".onnx":
        return OnnxModel(path, threads)
    raise ModelLoadError(f"{path}: unknown model format (expected .tflite or .onnx)")
