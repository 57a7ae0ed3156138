"""Flags of ``edgekit bench``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from edge_runtime.classifier import TTA_MODES
from edge_runtime.errors import printable
from edgekit.common.flags import add_setting

from .environment import usable_cores
from .settings import BenchSettings

DEFAULTS = BenchSettings()


def add_bench_settings(parser) -> None:
    """Register the flags that make a benchmark's settings (BenchSettings). Each defaults to
    None, "not given", so that the settings a report records fill what is not given when the
    pipeline compares them."""
    add_setting(parser, "--threads", "comma-separated interpreter/TensorFlow thread counts",
                "1 and every core this process may use")
    add_setting(parser, "--rounds", "interleaved timing rounds", DEFAULTS.rounds, type=int)
    add_setting(parser, "--latency-seconds", "time per subject per round spent on batch-1 "
                "inferences (and again on the throughput batch)", DEFAULTS.latency_seconds,
                type=float)
    add_setting(parser, "--batch", "batch size of the throughput test",
                DEFAULTS.throughput_batch, type=int)
    add_setting(parser, "--test-limit", "evaluate accuracy on N test images only, taken from "
                "the classes in turn (the first of each class, then the second, ...)", type=int)
    add_setting(parser, "--tta", "flip: also measure every file with test-time augmentation, "
                "each image averaged with its mirror image (rows <variant>+flip)", "none",
                choices=TTA_MODES)
    add_setting(parser, "--tflite-runtime-python", "also run .tflite files through "
                "tflite-runtime in this Python (an environment with numpy<2, tflite-runtime "
                "and pillow, like a Pi's)")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit bench``."""
    parser.add_argument("run_dir", type=Path,
                        help="a trained (and converted) run directory, or a folder of converted "
                             "files with their manifest.json (RUN_DIR/artifacts, or the files "
                             "copied to a device): those files alone, no Keras needed")
    parser.add_argument("--data", default=None,
                        help="a run directory: where its data is now, if it moved (default: as "
                             "trained); a folder of converted files: labelled images to measure "
                             "accuracy on (DATA/<class>/* or DATA/test/<class>/*; default: none)")
    add_bench_settings(parser)


def bench_settings(args: argparse.Namespace) -> BenchSettings:
    """The settings ``edgekit bench`` runs with for these flags; UserError for a bad value.
    Imports nothing heavy, so the pipeline checks them before training."""
    return replace(DEFAULTS, **bench_given(args))


def bench_given(args: argparse.Namespace) -> dict:
    """The BenchSettings fields these flags set (those given), with their values; UserError
    for a bad value."""
    from edge_runtime.errors import UserError, check_counts

    given = {"rounds": args.rounds, "throughput_batch": args.batch, "test_limit": args.test_limit,
             "latency_seconds": args.latency_seconds,
             # One flag sets the time of both: the batch-1 and the throughput measurements.
             "throughput_seconds": args.latency_seconds, "data": args.data}
    if args.threads is not None:
        try:
            given["threads"] = tuple(sorted({int(t) for t in args.threads.split(",")}))
        except ValueError:
            raise UserError(f"--threads must be comma-separated integers, got "
                            f"{args.threads!r}") from None
        check_counts(("--threads", min(given["threads"])))
    check_counts(("--rounds", args.rounds), ("--batch", args.batch),
                 ("--test-limit", args.test_limit))
    if args.latency_seconds is not None and not args.latency_seconds > 0:
        raise UserError(f"--latency-seconds must be positive, got {args.latency_seconds}")
    if args.tflite_runtime_python:
        check_runtime_python(args.tflite_runtime_python)
        given["runtime_pythons"] = (("tflite-runtime", args.tflite_runtime_python),)
    if args.tta is not None:
        given["tta"] = ("none",) if args.tta == "none" else ("none", args.tta)
    return {key: value for key, value in given.items() if value is not None}


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


def benches_files_alone(args: argparse.Namespace) -> bool:
    """Whether the command is ``edgekit bench`` of a folder of converted files, which needs
    neither Keras nor a run directory; UserError for a target that looks meant as one but
    cannot be measured (a model file, model files without their manifest)."""
    if args.command != "bench":
        return False
    from .files_bench import check_bench_target, is_files_folder

    check_bench_target(args.run_dir)
    return is_files_folder(args.run_dir)


def bench_and_report(target: Path, settings: BenchSettings, command: str) -> int:
    """Benchmark ``target`` (a run, or a folder of converted files; edgekit bench's work, also
    the pipeline's bench stage), print where the report went; 1 if any subject failed."""
    from edgekit.common.folder_lock import folder_held

    from .files_bench import is_files_folder

    warn_oversubscribed(settings.threads)
    if is_files_folder(target):
        from .files_bench import run_files_bench as run
    else:
        from .bench import run_bench as run
    with folder_held(target):  # a second benchmark would time this one's load
        report, failed = run(target, settings, command)
    errors = [r for r in report["rows"] if r["error"]]
    print(f"{len(report['rows']) - len(errors)} measurements, {len(errors)} failed -> "
          f"{target / 'report' / 'REPORT.md'}")
    for row in errors:
        print(printable(f"  failed: {row['variant']} ({row['runtime']}, {row['threads']} "
                        f"threads): {row['error']}"))
    for skipped in report.get("not_measured", []):
        print(printable(f"  not measured: {skipped['variant']}: {skipped['why']}"))
    return 1 if failed else 0


def run_bench_command(args: argparse.Namespace, settings: BenchSettings) -> int:
    """``edgekit bench``: measure RUN_DIR (or a folder of files) with the checked ``settings``
    of these flags."""
    from edgekit.common.command_line import edgekit_command_line

    command = edgekit_command_line("bench", f"edgekit bench {args.run_dir}")
    return bench_and_report(args.run_dir, settings, command)
