"""Where a camera loop's time goes, against the bare interpreter, in one run.

    python -m tools.camera_loop MODEL [--width 640 --height 480] [--rounds 10]

Runs the headless loop of ``edgekit camera`` (JSON lines written to /dev/null) on a synthetic
640 x 480 source and splits its time per frame into capture, preprocessing, inference and
output; in alternating rounds, times the bare interpreter on a ready input. Target: the loop
runs at no less than 1/4 of the bare inference rate.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path

from edgekit.benchmarks.interleave import interleaved_rounds, ratio_summary, spread
from edgekit.common.atomic import write_json

from .runtime_overhead import bare_call
from .tool_main import check_positive_counts, run_tool


def main(argv=None) -> int:
    """Print the per-stage split and the loop/bare rate ratio."""
    from edge_runtime.camera import STAGES, json_lines, run_loop
    from edge_runtime.classifier import Classifier
    from edge_runtime.frame_sources import SyntheticSource

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .tflite or .onnx file")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    parser.add_argument("--frames", type=int, default=300, help="frames (and calls) per round")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    check_positive_counts(args, "width", "height", "rounds", "frames")

    classifier = Classifier(args.model, threads=args.threads)
    source = SyntheticSource(args.width, args.height)
    split = {stage: [] for stage in STAGES}
    size = classifier.image_size
    # The bare interpreter gets a frame already at the model's size, whatever --width says.
    bare = bare_call(classifier, SyntheticSource(size, size).read())
    with open(os.devnull, "w") as sink:
        output = json_lines(sink)

        def loop_block():
            stats = run_loop(classifier, source, output, top_k=3, max_frames=args.frames)
            for stage, ms in stats.per_frame_ms().items():
                split[stage].append(ms)

        def bare_block():
            for _ in range(args.frames):
                bare()

        # One call = a block of --frames frames (or bare calls); figures are per frame.
        blocks = interleaved_rounds({"bare": bare_block, "loop": loop_block}, args.rounds,
                                    calls=1, warmup=1)
    times = {name: [ms / args.frames for ms in values] for name, values in blocks.items()}
    for values in split.values():
        del values[0]  # the warm-up block
    # The loop's frame rate as a share of the bare inference rate = bare time / loop time.
    rate_share = ratio_summary(times["bare"], times["loop"])
    result = {"model": args.model.name, "backend": classifier.backend,
              "frame": f"{args.width}x{args.height}", "bare_ms": spread(times["bare"]),
              "loop_ms": spread(times["loop"]),
              "stage_ms": {stage: statistics.median(v) for stage, v in split.items()},
              "loop_rate_share_of_bare": rate_share,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": "python -m tools.camera_loop " + shlex.join(sys.argv[1:])}
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
