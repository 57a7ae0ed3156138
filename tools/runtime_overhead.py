"""What ``Classifier.classify`` costs on top of the bare interpreter, per model file.

    python -m tools.runtime_overhead MODEL [MODEL ...] [--rounds 15] [--threads N]

For each file: the bare interpreter's set-input / invoke / get-output on a ready input tensor,
against ``classify`` on an already decoded (S, S, 3) uint8 image (lookup into the input,
dequantize, top-5 with labels), interleaved in the same run. Target: at most 1.15x.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

from edge_runtime.preprocess import scale_pixels
from edgekit.benchmarks.interleave import interleaved_rounds, ratio_summary, spread
from edgekit.common.atomic import write_json

from .tool_main import check_positive_counts, run_tool


def bare_call(classifier, pixels: np.ndarray):
    """The interpreter alone, fed the exact input tensor classify would build."""
    model = classifier.model
    if classifier.backend == "onnxruntime":
        feed = {model.input_name: scale_pixels(pixels[None], classifier.norm_mean,
                                               classifier.norm_std)}
        return lambda: model.session.run(None, feed)
    ready = model.pixel_table[pixels[None]]
    interpreter, input_index, output_index = model.interpreter, model.input_index, \
        model.output_index

    def run():
        interpreter.set_tensor(input_index, ready)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)
    return run


def main(argv=None) -> int:
    """Print a Markdown table of bare vs classify milliseconds and their ratio."""
    from edge_runtime.classifier import Classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help=".tflite / .onnx files")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--calls", type=int, default=300, help="calls per round")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    check_positive_counts(args, "rounds", "calls")

    rows = []
    for path in args.models:
        classifier = Classifier(path, threads=args.threads)
        size = classifier.image_size
        pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
        times = interleaved_rounds({"bare": bare_call(classifier, pixels),
                                    "classify": lambda: classifier.classify(pixels, top_k=5)},
                                   args.rounds, args.calls)
        rows.append({"model": path.name, "backend": classifier.backend,
                     "bare_ms": spread(times["bare"]), "classify_ms": spread(times["classify"]),
                     "ratio": ratio_summary(times["classify"], times["bare"])})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; command: python -m "
          f"tools.runtime_overhead {shlex.join(sys.argv[1:])}")
    print("| model | backend | bare ms (median) | classify ms (median) | ratio median "
          "[min, max] |")
    print("|---|---|---|---|---|")
    for row in rows:
        ratio = row["ratio"]
        print(f"| {row['model']} | {row['backend']} | {row['bare_ms']['median']:.4f} | "
              f"{row['classify_ms']['median']:.4f} | {ratio['median']:.3f} "
              f"[{ratio['min']:.3f}, {ratio['max']:.3f}] |")
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
