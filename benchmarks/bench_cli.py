"""Flags of ``edgekit bench``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from edge_runtime.classifier import TTA_MODES

from .environment import default_threads, usable_cores


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the benchmark flags."""
    parser.add_argument("run_dir", type=Path,
                        help="a trained (and converted) run directory, or a folder of converted "
                             "files with their manifest.json (RUN_DIR/artifacts, or the files "
                             "copied to a device): those files alone, no Keras needed")
    parser.add_argument("--data", default=None,
                        help="a run directory: where its data is now, if it moved (default: as "
                             "trained); a folder of converted files: labelled images to measure "
                             "accuracy on (DATA/<class>/* or DATA/test/<class>/*; default: none)")
    parser.add_argument("--threads", default=",".join(str(n) for n in default_threads()),
                        help="comma-separated interpreter/TensorFlow thread counts (default: 1 "
                             "and every core this process may use)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--latency-seconds", type=float, default=0.3,
                        help="time per subject per round spent on batch-1 inferences (and "
                             "again on the throughput batch)")
    parser.add_argument("--batch", type=int, default=256, help="batch size of the throughput test")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="evaluate accuracy on N test images only, taken from the "
                             "classes in turn (the first of each class, then the second, ...)")
    parser.add_argument("--tta", default="none", choices=TTA_MODES,
                        help="flip: also measure every file with test-time augmentation, each "
                             "image averaged with its mirror image (rows <variant>+flip)")
    parser.add_argument("--tflite-runtime-python", default=None,
                        help="also run .tflite files through tflite-runtime in this Python (an "
                             "environment with numpy<2, tflite-runtime and pillow, like a Pi's)")


def check_bench_args(args: argparse.Namespace) -> tuple[int, ...]:
    """The thread counts to measure; UserError for a bad flag value. Imports nothing heavy, so
    ``edgekit pipeline`` checks its benchmark flags with it before training."""
    from edge_runtime.errors import UserError, check_counts

    try:
        threads = tuple(sorted({int(t) for t in args.threads.split(",")}))
    except ValueError:
        raise UserError(f"--threads must be comma-separated integers, got {args.threads!r}") \
            from None
    check_counts(("--rounds", args.rounds), ("--batch", args.batch), ("--threads", min(threads)),
                 ("--test-limit", args.test_limit))
    if not args.latency_seconds > 0:
        raise UserError(f"--latency-seconds must be positive, got {args.latency_seconds}")
    if args.tflite_runtime_python:
        check_runtime_python(args.tflite_runtime_python)
    return threads


def check_runtime_python(python: str) -> None:
    """UserError unless ``python`` runs and imports what a tflite-runtime worker needs: else
    every .tflite file's tflite-runtime row failed, one by one, after the benchmark's other
    measurements (docs/benchmarks.md)."""
    from edge_runtime.errors import UserError

    if not shutil.which(python):
        raise UserError(f"--tflite-runtime-python {python}: no such Python executable")
    probe = subprocess.run([python, "-c", "import numpy, PIL, tflite_runtime.interpreter"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        raise UserError(f"--tflite-runtime-python {python} cannot run the tflite-runtime "
                        f"worker ({reason}): pip install tflite-runtime 'numpy<2' pillow there")


def warn_oversubscribed(threads: tuple) -> None:
    """A warning for thread counts above the cores this process may use: their timings are of
    threads taking turns on fewer cores, not of a machine with that many."""
    cores = usable_cores()
    over = [str(count) for count in threads if count > cores]
    if over:
        print(f"warning: --threads {','.join(over)} is more than the {cores} "
              f"core{'s' if cores > 1 else ''} this process may use: those timings are of "
              "threads sharing cores", file=sys.stderr)


def bench_settings(args: argparse.Namespace):
    """The BenchSettings these flags ask for; UserError for a bad flag value."""
    from .bench import BenchSettings

    return BenchSettings(rounds=args.rounds, latency_seconds=args.latency_seconds,
                         throughput_seconds=args.latency_seconds, throughput_batch=args.batch,
                         threads=check_bench_args(args), test_limit=args.test_limit,
                         data=args.data,
                         runtime_pythons=(("tflite-runtime", args.tflite_runtime_python),)
                         if args.tflite_runtime_python else (),
                         tta=("none",) if args.tta == "none" else ("none", args.tta))


def benches_files_alone(args: argparse.Namespace) -> bool:
    """Whether the command is ``edgekit bench`` of a folder of converted files, which needs
    neither Keras nor a run directory; UserError for a target that looks meant as one but
    cannot be measured (a model file, model files without their manifest)."""
    if args.command != "bench":
        return False
    from .files_bench import check_bench_target, is_files_folder

    check_bench_target(args.run_dir)
    return is_files_folder(args.run_dir)


def run_bench_command(args: argparse.Namespace) -> int:
    """Benchmark, print where the report went; 1 if any subject failed."""
    from edgekit.common.command_line import edgekit_command_line

    settings = bench_settings(args)
    warn_oversubscribed(settings.threads)
    command = edgekit_command_line("bench", f"edgekit bench {args.run_dir}")
    if benches_files_alone(args):
        from .files_bench import run_files_bench as run
    else:
        from .bench import run_bench as run
    from edgekit.common.folder_lock import folder_held

    with folder_held(args.run_dir):  # a second benchmark would time this one's load
        report, failed = run(args.run_dir, settings, command)
    errors = [r for r in report["rows"] if r["error"]]
    print(f"{len(report['rows']) - len(errors)} measurements, {len(errors)} failed -> "
          f"{args.run_dir / 'report' / 'REPORT.md'}")
    for row in errors:
        print(f"  failed: {row['variant']} ({row['runtime']}, {row['threads']} threads): "
              f"{row['error']}")
    for skipped in report.get("not_measured", []):
        print(f"  not measured: {skipped['variant']}: {skipped['why']}")
    return 1 if failed else 0
