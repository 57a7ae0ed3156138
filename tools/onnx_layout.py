"""Does feeding ONNX Runtime NCHW (tf2onnx's ``inputs_as_nchw``) beat our NHWC input?

    python -m tools.onnx_layout RUN_DIR [--repeats 10]

Converts RUN_DIR/model.keras both ways, counts Transpose nodes, and times batch-1 inference of
the two sessions interleaved (warm-up, then ``repeats`` rounds of 100 runs each).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.common.quiet_import import import_keras
from edgekit.train.finished_run import check_finished_run

from .tool_main import check_positive_counts, run_tool


def main(argv=None) -> int:
    """Print transposes and median/min/max milliseconds per inference for both layouts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a training run directory")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds of 100 runs")
    args = parser.parse_args(argv)
    check_positive_counts(args, "repeats")
    check_finished_run(args.run_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import_keras()  # the first import, without TensorFlow's start-up notes
    import keras
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from edgekit.convert.onnx_variants import OPSET

    model = keras.saving.load_model(args.run_dir / "model.keras")
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)

    @tf.function(input_signature=spec)
    def serve(image):
        return {"probabilities": model(image, training=False)}

    image = np.random.default_rng(0).random((1, *model.input_shape[1:])).astype(np.float32)
    layouts = {"nhwc": ({}, image), "nchw": ({"inputs_as_nchw": ["image"]},
                                             np.ascontiguousarray(image.transpose(0, 3, 1, 2)))}
    sessions = {}
    for name, (extra, feed) in layouts.items():
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET, **extra)
        transposes = sum(node.op_type == "Transpose" for node in proto.graph.node)
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        sessions[name] = (session, {session.get_inputs()[0].name: feed}, transposes)
        for _ in range(50):  # warm-up
            session.run(None, sessions[name][1])
    times = {name: [] for name in sessions}
    for _ in range(args.repeats):
        for name, (session, feed, _) in sessions.items():  # interleaved against drift
            started = time.perf_counter()
            for _ in range(100):
                session.run(None, feed)
            times[name].append((time.perf_counter() - started) * 10)  # ms per run
    for name, (_, _, transposes) in sessions.items():
        print(f"{name}: {transposes} Transpose nodes, batch-1 median "
              f"{statistics.median(times[name]):.3f} ms (min {min(times[name]):.3f}, "
              f"max {max(times[name]):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
