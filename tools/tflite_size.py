"""Where the bytes of a .tflite file go: weights, quantization parameters, tensor names and the
rest (operators, metadata such as the labels, flatbuffer structure).

    python -m tools.tflite_size FILE.tflite|FOLDER [...]     (a folder: its .tflite files)

Per-channel int8 stores a float32 scale and an int64 zero point for every output channel of
every weight and bias tensor, so a model with many narrow layers (a depthwise-separable CNN)
pays noticeably more than its parameter count in file size (the ``int8-per-tensor`` variant
stores one per tensor instead).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge_runtime.errors import UserError

from .tool_main import run_tool

# Per quantized channel: one float32 scale and one int64 zero point (TFLite schema).
BYTES_PER_QUANTIZED_CHANNEL = 4 + 8


def size_breakdown(path: Path) -> dict:
    """Bytes of ``path`` by what they hold: ``weights`` (constant tensors' data),
    ``quantization`` (scales and zero points), ``names`` (tensor names) and ``rest``."""
    from ai_edge_litert.interpreter import Interpreter

    # Not allocated: only constant tensors (weights, biases) have data to read then.
    try:
        interpreter = Interpreter(model_path=str(path))
    except ValueError:  # not a flatbuffer: a file of another kind, or a cut-off one
        raise UserError(f"{path}: not a TFLite model") from None
    weights = quantization = names = 0
    for tensor in interpreter.get_tensor_details():
        names += len(tensor["name"].encode())
        quantization += BYTES_PER_QUANTIZED_CHANNEL * len(
            tensor["quantization_parameters"]["scales"])
        try:
            weights += interpreter.get_tensor(tensor["index"]).nbytes
        except ValueError:  # an activation: no data until the interpreter is allocated
            pass
    total = path.stat().st_size
    return {"file": total, "weights": weights, "quantization": quantization, "names": names,
            "rest": total - weights - quantization - names}


def tflite_files(arguments: list[Path]) -> list[Path]:
    """Each argument as itself, or a folder as the .tflite files in it (sorted); UserError
    naming what is missing or a folder without any."""
    missing = [str(f) for f in arguments if not f.exists()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}")
    files = []
    for argument in arguments:
        found = sorted(argument.glob("*.tflite")) if argument.is_dir() else [argument]
        if not found:
            raise UserError(f"{argument}: a folder without .tflite files")
        files += found
    return files


def main(argv=None) -> int:
    """Print one line per file: its bytes and the share of each part."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+",
                        help=".tflite files, or folders of them (RUN_DIR/artifacts)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for path in tflite_files(args.files):
        parts = size_breakdown(path)
        shares = ", ".join(f"{key} {parts[key]:,} ({100 * parts[key] / parts['file']:.0f}%)"
                           for key in ("weights", "quantization", "names", "rest"))
        print(f"{path}: {parts['file']:,} bytes = {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
