"""The deployable variants: name, file, format, precision, how to build, and how closely each
must agree with the Keras model on the probe set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from edge_runtime.preprocess import NORM_MEAN, NORM_STD


@dataclass(frozen=True)
class Variant:
    """One artifact the conversion stage can produce."""

    name: str
    format: str                       # "tflite" | "onnx"
    precision: str
    description: str
    # Float variants must match Keras this closely (max |p_keras - p_variant| over the probe
    # set) or the command fails; integer variants are measured and recorded, not gated.
    max_abs_diff: Optional[float] = None
    # The input the file expects: (pixel - norm_mean) / norm_std, written into its metadata.
    norm_mean: float = NORM_MEAN
    norm_std: float = NORM_STD

    @property
    def file(self) -> str:
        return f"model_{self.name}.{self.format}"


VARIANTS = {v.name: v for v in [
    Variant("float32", "tflite", "float32", "TFLite, float32 as trained", 1e-4),
    Variant("float16", "tflite", "float16", "TFLite, float16 weights", 5e-3),
    Variant("dynamic-int8", "tflite", "dynamic-int8",
            "TFLite, int8 weights, activations quantized at run time"),
    Variant("int8", "tflite", "int8",
            "TFLite, full-integer int8 with int8 input and output (XNNPACK fast path)"),
    Variant("int8-per-tensor", "tflite", "int8",
            "TFLite, full-integer int8 with one scale per weight tensor instead of per channel "
            "(a smaller file), int8 input and output"),
    Variant("int8-mediapipe", "tflite", "int8",
            "TFLite, full-integer int8 with uint8 pixel input (scaling inside) and float32 "
            "output, for MediaPipe's ImageClassifier", norm_mean=0.0, norm_std=1.0),
    Variant("int8-mixed", "tflite", "int8-mixed",
            "TFLite, int8 but for the fewest layers that, left in float, bring the "
            "validation accuracy within --max-drop points of Keras; float32 input and output"),
    Variant("int16x8", "tflite", "int16x8",
            "TFLite, int16 activations and int8 weights (16x8 quantization), float32 input "
            "and output"),
    Variant("qat-int8", "tflite", "qat-int8",
            "TFLite, full-integer int8 after quantization-aware fine-tuning (tfmot on a "
            "tf_keras rebuild), int8 input and output"),
    Variant("qat-int8-per-tensor", "tflite", "qat-int8",
            "TFLite, full-integer int8 after quantization-aware fine-tuning with one scale per "
            "weight tensor (a smaller file), int8 input and output"),
    Variant("onnx-float32", "onnx", "float32", "ONNX (tf2onnx, opset 17), float32", 1e-4),
    Variant("onnx-int8", "onnx", "int8",
            "ONNX, static int8 QDQ, per-channel weights (ONNX Runtime quantizer)"),
    Variant("onnx-int8-mixed", "onnx", "int8-mixed",
            "ONNX, static int8 QDQ but for the fewest nodes that, left in float, bring the "
            "validation accuracy within --max-drop points of Keras"),
]}


# Made only when asked for with an accuracy budget (--max-drop).
BUDGETED = ("int8-mixed", "onnx-int8-mixed")


def parse_variants(text: Optional[str]) -> list[Variant]:
    """``--variants a,b,...`` (default: all) in the registry's order."""
    from edge_runtime.errors import UserError

    if text is None:
        return list(VARIANTS.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown --variants {', '.join(unknown)}: choose from "
                        f"{', '.join(VARIANTS)}")
    if not names:  # an unset shell variable, say; it used to mean every variant
        raise UserError(f"--variants {text!r} names no variant: choose from "
                        f"{', '.join(VARIANTS)}")
    return [v for v in VARIANTS.values() if v.name in names]
