"""Training step time by Keras backend and precision policy: which way trains fastest here.

Each (backend, policy) pair runs in its own process, because Keras fixes its backend at import.
A process builds ``--arch`` at ``--width``, and times the median of ``--repeats`` calls of
``train_on_batch`` on one batch of random images (after one warm-up call that traces or
compiles), and with ``--teacher-arch`` the teacher's forward pass too: the extra work a
distillation step does. Random data, so no data set is read and the figures are the model's
compute alone; ratios are against the first pair, all measured in one run.

    python -m tools.train_step_speed --arch ds_cnn --width 0.75 \\
        --teacher-arch resnet8 --teacher-width 4
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edgekit.benchmarks.workers import worker_environment
from edgekit.train.cli import ARCH_NAMES

from .tool_main import check_positive_counts, run_tool

REPO = Path(__file__).resolve().parents[1]  # where ``python -m tools.NAME`` runs

BACKENDS = ("tensorflow", "jax", "torch")
POLICIES = ("float32", "mixed_bfloat16")


def _median_seconds(call, repeats: int) -> float:
    call()  # warm-up: tracing and compilation happen here, outside the timings
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(args: argparse.Namespace) -> dict:
    """Time the student's train step (and the teacher's forward pass) under this process's
    backend and ``args.policy``."""
    import keras
    import numpy as np

    from edgekit.train.models import build_model

    keras.mixed_precision.set_global_policy(args.policy)
    rng = np.random.default_rng(0)
    shape = (args.image_size, args.image_size, 3)
    images = rng.random((args.batch_size, *shape), dtype=np.float32)
    labels = np.eye(args.classes, dtype=np.float32)[rng.integers(0, args.classes, args.batch_size)]
    student = build_model(args.arch, shape, args.classes, args.width)
    student.compile(optimizer="adamw", loss="categorical_crossentropy")
    backend = keras.backend.backend()
    result = {"library": f"{backend} {importlib.metadata.version(backend)}",
              "train_step_s": _median_seconds(lambda: student.train_on_batch(images, labels),
                                              args.repeats)}
    if args.teacher_arch:
        teacher = build_model(args.teacher_arch, shape, args.classes, args.teacher_width)
        result["teacher_forward_s"] = _median_seconds(lambda: teacher.predict_on_batch(images),
                                                      args.repeats)
    return result


def _measure_elsewhere(backend: str, policy: str, argv: list[str], timeout: float) -> dict:
    """Run ``measure`` in a child process under ``backend``; an error becomes the row's note."""
    env = {**worker_environment(), "KERAS_BACKEND": backend}
    try:
        child = subprocess.run([sys.executable, "-m", "tools.train_step_speed", *argv,
                                "--worker", "--policy", policy], capture_output=True, text=True,
                               env=env, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:g} s"}
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {child.returncode}: {last}"}
    return json.loads(lines[-1])


def add_ratios(rows: list[dict]) -> None:
    """Each row's step times over the first measured row's (1.0 for that row)."""
    base = next((row for row in rows if "train_step_s" in row), None)
    if base is None:
        return
    for row in rows:
        for key in ("train_step_s", "teacher_forward_s"):
            if key in row and key in base:
                row[key.removesuffix("_s") + "_ratio"] = round(row[key] / base[key], 3)


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table, errors in the last column."""
    lines = ["| backend | policy | train step (s) | ratio | teacher forward (s) | ratio | note |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [row["backend"], row["policy"]]
        for key in ("train_step_s", "train_step_ratio", "teacher_forward_s",
                    "teacher_forward_ratio"):
            cells.append(f"{row[key]:.3f}" if key in row else "")
        cells.append(row.get("error", ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", default="seed_cnn", choices=ARCH_NAMES,
                        help="architecture to train")
    parser.add_argument("--width", type=float, default=1.0, help="its channel multiplier")
    parser.add_argument("--teacher-arch", default=None, choices=ARCH_NAMES,
                        help="also time this model's forward pass")
    parser.add_argument("--teacher-width", type=float, default=1.0, help="the teacher's multiplier")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--image-size", type=int, default=32, help="side of the square images")
    parser.add_argument("--classes", type=int, default=10, help="number of classes")
    parser.add_argument("--repeats", type=int, default=6, help="timed calls per measurement")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="comma-separated Keras precision policies")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pair at most")
    parser.add_argument("--out", default="train_step_speed.json", help="JSON result file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    """Measure every (backend, policy) pair, print a table and save the JSON result."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return 0
    check_positive_counts(args, "batch_size", "repeats")
    rows = []
    for backend in args.backends.split(","):
        for policy in args.policies.split(","):
            row = {"backend": backend, "policy": policy}
            row.update(_measure_elsewhere(backend, policy, argv, args.timeout))
            rows.append(row)
            print(f"{backend} {policy}: {row}", file=sys.stderr, flush=True)
    add_ratios(rows)
    from edgekit.common.atomic import write_json

    result = {
        "command": "python -m tools.train_step_speed " + shlex.join(argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "arch": args.arch, "width": args.width, "teacher_arch": args.teacher_arch,
        "teacher_width": args.teacher_width, "batch_size": args.batch_size, "rows": rows,
    }
    write_json(Path(args.out), result)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
