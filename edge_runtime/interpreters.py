"""Thin wrappers over the interpreters a device may have: LiteRT (ai-edge-litert), the older
tflite-runtime, and ONNX Runtime.

Each wrapper offers two ways in. ``predict`` takes scaled float32 images (N, H, W, 3), for
verification and benchmarks. ``predict_pixels`` takes uint8 pixels and maps them to the
model's input as ``set_normalization`` prepared: for TFLite through a 256-entry table from a
pixel value straight to the input value, normalization and quantization included, so the hot
path is one lookup; for ONNX by ``scale_pixels``, as ``predict``'s callers scale them, into
a buffer bound to the session. Both quantize and dequantize with the parameters stored in the
model itself (never assumed).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from .cpu_features import onnx_int8_saturates
from .errors import UserError, first_line
from .native_log import native_lines_dropped
from .preprocess import scale_pixels

TFLITE_BACKENDS = ("ai-edge-litert", "tflite-runtime")
ONNX_BACKENDS = ("onnxruntime",)
BACKENDS = ("auto",) + TFLITE_BACKENDS + ONNX_BACKENDS

_TFLITE_MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter",
                   "tflite-runtime": "tflite_runtime.interpreter"}
# ONNX Runtime's int8 kernels on an x86 CPU without an int8 dot-product instruction add pairs of
# uint8 x int8 products in saturating 16 bits. This session entry has it store int8 weights as
# uint8 and run its u8u8 kernels, which do not saturate (its Avx2WeightS8ToU8Transformer). On a
# CPU without VNNI emulated by qemu (-cpu Haswell) a seed_cnn's onnx-int8 file scored 70.24%
# on the 5,000 test images without it and 72.72% with it, as the same file does on a VNNI CPU.
# On a VNNI CPU, where nothing saturates, it changed no output and cost 1.25x to 1.75x the
# latency, so it is set only where needed (docs/conversion.md, onnx-int8).
X64_QUANT_PRECISION = "session.x64quantprecision"

# The interpreters' own INFO lines ("INFO: Created TensorFlow Lite XNNPACK delegate for
# CPU.", on every load) would sit above every answer of classify and the camera; their
# warnings and errors still show.
_INTERPRETER_NOTE = re.compile(r"INFO: ")


class ModelLoadError(UserError):
    """A model file that cannot be loaded by its interpreter."""


def _tflite_interpreter_class(backend: str):
    """The Interpreter class of the chosen TFLite backend; "auto" prefers LiteRT, then
    tflite-runtime (old Pi images). Never TensorFlow's."""
    import importlib

    candidates = TFLITE_BACKENDS if backend == "auto" else (backend,)
    for name in candidates:
        try:
            return importlib.import_module(_TFLITE_MODULES[name]).Interpreter, name
        except ImportError:
            continue
    if backend == "auto":
        raise UserError("no TFLite interpreter installed: pip install ai-edge-litert "
                        "(or tflite-runtime on 32-bit Pi OS)")
    raise UserError(f"backend {backend} is not installed: pip install {backend}")


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Float -> integer with the tensor's own (scale, zero point), rounded and clipped."""
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> float with the tensor's own (scale, zero point)."""
    return (values.astype(np.float32) - zero_point) * scale


def batch_refused(batch: int, reason: str) -> UserError:
    """The error for a batch size the model's input cannot take."""
    return UserError(f"this model cannot take a batch of {batch} ({reason}); classify one "
                     "image at a time")


def _check_rgb_input(path: Path, shape) -> int:
    """The square side of an (N, S, S, 3) input; anything else cannot be fed images."""
    dims = [int(d) for d in shape]
    if len(dims) != 4 or dims[3] != 3 or dims[1] != dims[2] or dims[1] <= 0:
        raise ModelLoadError(f"{path}: input shape {tuple(dims)} cannot be fed RGB images "
                             "(expected (N, S, S, 3))")
    return dims[1]


class TFLiteModel:
    """A .tflite file run by LiteRT (or tflite-runtime), one image or a batch at a time."""

    def __init__(self, path: Path, threads: Optional[int] = None, backend: str = "auto"):
        interpreter_class, self.backend = _tflite_interpreter_class(backend)
        try:
            with native_lines_dropped(_INTERPRETER_NOTE):
                self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: not a loadable TFLite model "
                                 f"({first_line(exc)})") from None
        self._read_details()
        self.image_size = _check_rgb_input(path, self.input["shape"])
        dtype = np.dtype(self.input["dtype"])
        if dtype not in (np.float32, np.int8, np.uint8):
            raise ModelLoadError(f"{path}: input type {dtype.name} is not supported "
                                 "(float32, int8 or uint8)")

    def _read_details(self) -> None:
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        self.input_index = self.input["index"]
        self.output_index = self.output["index"]
        # Integer outputs are dequantized through a 256-entry table indexed by the raw byte:
        # one lookup instead of three array operations per call.
        self.output_table = None
        if self.output["dtype"] != np.float32:
            scale, zero_point = self.output["quantization"]
            codes = np.arange(256, dtype=np.uint8).view(self.output["dtype"])
            self.output_table = dequantize(codes, scale, zero_point)

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
        try:
            self.interpreter.resize_tensor_input(self.input_index, shape)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise batch_refused(batch, first_line(exc)) from None
        self._read_details()

    def _to_input(self, images: np.ndarray) -> np.ndarray:
        """Scaled float images -> the input tensor's dtype, quantized with its own params."""
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return images
        scale, zero_point = self.input["quantization"]
        return quantize(images, scale, zero_point, dtype)

    def set_normalization(self, mean: float, std: float) -> None:
        """Prepare ``predict_pixels``: the input value of each uint8 pixel value (scaling by
        (mean, std), then the input tensor's quantization), exactly what ``predict`` would
        compute. When that table is a byte shift (int8 with zero point -128 and scale
        1/255, or raw uint8), pixels are shifted instead of looked up: 2 us instead of 5."""
        self.pixel_table = self._to_input(scale_pixels(np.arange(256, dtype=np.uint8), mean, std))
        self.pixel_shift = None
        if self.pixel_table.itemsize == 1:
            shift = self.pixel_table.view(np.uint8) - np.arange(256, dtype=np.uint8)
            if np.all(shift == shift[0]):
                self.pixel_shift = shift[0]

    def _run(self) -> np.ndarray:
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output_index)
        if self.output_table is None:
            return raw
        return self.output_table[raw.view(np.uint8)]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for scaled float32 images (N, H, W, 3); integer models are fed
        values quantized as the model's input quantization demands."""
        images = np.asarray(images, np.float32)
        if len(images) != self.batch:
            self._resize(len(images))
        self.interpreter.set_tensor(self.input_index, self._to_input(images))
        return self._run()

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 pixels (N, S, S, 3), mapped as ``set_normalization``
        prepared, straight into the interpreter's input buffer (no intermediate copies)."""
        if len(pixels) != self.batch:
            self._resize(len(pixels))
        # The view from tensor() must not outlive these statements: invoke() refuses to run
        # while Python holds a reference into the interpreter's buffers.
        if self.pixel_shift is not None:
            np.add(pixels, self.pixel_shift,
                   out=self.interpreter.tensor(self.input_index)().view(np.uint8))
        else:
            np.take(self.pixel_table, pixels, out=self.interpreter.tensor(self.input_index)(),
                    mode="clip")
        return self._run()


class OnnxModel:
    """An .onnx file run by ONNX Runtime on the CPU."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is not installed: pip install onnxruntime") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if onnx_int8_saturates():
            options.add_session_config_entry(X64_QUANT_PRECISION, "1")
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f"{path}: not a loadable ONNX model ({first_line(exc)})") \
                from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        if model_input.type != "tensor(float)":
            raise ModelLoadError(f"{path}: input type {model_input.type} is not supported "
                                 "(float)")
        self.image_size = _check_rgb_input(
            path, [1 if not isinstance(d, int) else d for d in model_input.shape])
        # None when the batch dimension is named (any batch), else the one batch it takes.
        self.batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None

    def describe(self) -> dict:
        """dtype and shape of the input and output tensors (QDQ models keep float IO)."""
        def tensor(node):
            dtype = node.type.replace("tensor(", "").rstrip(")")
            return {"name": node.name, "dtype": "float32" if dtype == "float" else dtype,
                    "shape": [d if isinstance(d, int) else -1 for d in node.shape],
                    "quantization": None}
        return {"input": tensor(self.session.get_inputs()[0]),
                "output": tensor(self.session.get_outputs()[0])}

    def metadata_properties(self) -> dict:
        """The model's metadata_props (labels and normalization written by the converter)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def set_normalization(self, mean: float, std: float) -> None:
        """Prepare ``predict_pixels``: pixels scaled by (mean, std) as ``scale_pixels``
        does, and for one image an input buffer bound to the session once (ONNX Runtime's
        I/O binding), so a call neither builds a feed nor copies the image again."""
        self.norm_mean, self.norm_std = mean, std
        self.image_buffer = np.empty((1, self.image_size, self.image_size, 3), np.float32)
        self.binding = self.session.io_binding()
        # ONNX Runtime backs a bound CPU input with the array's own memory (its
        # bind_cpu_input keeps a reference for that reason): writing the buffer feeds the model.
        self.binding.bind_cpu_input(self.input_name, self.image_buffer)
        self.binding.bind_output(self.session.get_outputs()[0].name, "cpu")

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for scaled float32 images (N, H, W, 3)."""
        if self.batch is not None and len(images) != self.batch:
            raise batch_refused(len(images), f"its input's batch is fixed at {self.batch}")
        feed = {self.input_name: np.asarray(images, np.float32)}
        return np.asarray(self.session.run(None, feed)[0], np.float32)

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 pixels (N, S, S, 3), scaled as ``set_normalization``
        prepared. One image (classify's and the camera's path) goes through the bound
        buffer: 5% less time per call than ``run`` with a fresh feed (docs/results.md,
        "Runtime")."""
        if len(pixels) != 1 or self.batch not in (None, 1):
            return self.predict(scale_pixels(pixels, self.norm_mean, self.norm_std))
        scale_pixels(pixels, self.norm_mean, self.norm_std, out=self.image_buffer)
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0]


def load_model(path: Path, threads: Optional[int] = None, backend: str = "auto"):
    """The right wrapper for a .tflite or .onnx file. ``backend`` is "auto" (whatever is
    installed that runs the file) or one of BACKENDS; the wrapper's ``.backend`` says which."""
    path = Path(path)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    if model_format(path) == "tflite":
        if backend in ONNX_BACKENDS:
            raise UserError(f"{path}: backend {backend} runs .onnx files, not .tflite")
        return TFLiteModel(path, threads, backend)
    if backend in TFLITE_BACKENDS:
        raise UserError(f"{path}: backend {backend} runs .tflite files, not .onnx")
    return OnnxModel(path, threads)


def model_format(path: Path) -> str:
    """"tflite" or "onnx", from the file's extension in any case (a copy through a FAT card
    may read MODEL.TFLITE); ModelLoadError for any other file."""
    suffix = path.suffix.lower()
    if suffix in (".tflite", ".onnx"):
        return suffix[1:]
    # The training run's model is the file people try first.
    hint = "; a Keras model is turned into them by edgekit convert RUN_DIR" \
        if suffix in (".keras", ".h5") else ""
    raise ModelLoadError(f"{path}: unknown model format (expected .tflite or .onnx{hint})")
