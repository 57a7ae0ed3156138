"""The ``edgekit`` command. Thin: it parses flags and imports a stage only when its subcommand
runs, so ``--help`` is instant and runtime commands never load TensorFlow."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, NamedTuple, Optional, Sequence

from . import __version__


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except where there is no meaningful default to show, and keeps the
    line breaks of descriptions and epilogs (the study's grid-file example is TOML)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class Command(NamedTuple):
    """One subcommand: its help, its flags, ``prepare`` (the flags checked and turned into the
    stage's settings, importing nothing heavy; None where there is nothing to prepare) and
    ``run`` (the work, given the parsed flags and what ``prepare`` returned)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    prepare: Optional[Callable[[argparse.Namespace], Any]]
    run: Callable[[argparse.Namespace, Any], int]


def commands() -> dict[str, Command]:
    """Every subcommand, in the order ``edgekit --help`` lists them."""
    from edge_runtime.camera import add_camera_arguments, run_camera
    from edge_runtime.classify_command import add_classify_arguments, run_classify
    from edgekit.benchmarks.compare import add_compare_arguments, run_compare
    from edgekit.benchmarks.bench_cli import add_bench_arguments, bench_settings, run_bench_command
    from edgekit.convert.check_cli import add_check_arguments, run_check
    from edgekit.convert.cli import add_convert_arguments, convert_settings, run_convert
    from edgekit.train.cli import (
        add_evaluate_arguments,
        add_train_arguments,
        check_evaluate_args,
        check_train_args,
        run_evaluate,
        run_train,
    )

    from .pipeline import add_pipeline_arguments, pipeline_settings, run_pipeline_command
    from .study import add_study_arguments, check_study_args, run_study

    return {
        "train": Command("train a CNN on CIFAR-10 or image folders into a run directory",
                         add_train_arguments, check_train_args, run_train),
        "evaluate": Command("recompute metrics.json and the pictures of a finished run",
                            add_evaluate_arguments, check_evaluate_args, run_evaluate),
        "convert": Command("turn RUN_DIR/model.keras into verified TFLite and ONNX variants",
                           add_convert_arguments, convert_settings, run_convert),
        "check": Command("will each converted file load and run on a Raspberry Pi's runtimes? "
                         "(probed here, in tflite-runtime 2.14 and on emulated Pis)",
                         add_check_arguments, None, run_check),
        "classify": Command("classify image files, folders or globs with a .tflite/.onnx model "
                            "(no TensorFlow needed)", add_classify_arguments, None,
                            lambda args, _: run_classify(args)),
        "camera": Command("classify live frames from the Pi camera, a USB camera, a video file "
                          "or a folder", add_camera_arguments, None,
                          lambda args, _: run_camera(args)),
        "bench": Command("measure accuracy, latency, memory and size of every variant against "
                         "the Keras model into RUN_DIR/report (or of converted files alone, on "
                         "a device)", add_bench_arguments, bench_settings, run_bench_command),
        "compare": Command("set two benchmark reports of the same files side by side (the "
                           "host's and a device's): accuracy, latency, cold start, memory",
                           add_compare_arguments, None, run_compare),
        "pipeline": Command("train, convert and bench in one resumable command",
                            add_pipeline_arguments, pipeline_settings, run_pipeline_command),
        "study": Command("train, convert and bench a grid of architectures and widths; Pareto "
                         "plots", add_study_arguments, check_study_args, run_study),
    }


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per stage command."""
    parser = argparse.ArgumentParser(
        prog="edgekit", formatter_class=_HelpFormatter,
        description="Train an image classifier, convert it for small devices, and measure\n"
                    "what each deployment choice costs.")
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in commands().items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.help[:1]
                                          .upper() + command.help[1:] + ".",
                                          formatter_class=_HelpFormatter)
        command.add_arguments(subparser)
    return parser


def _prepared(args: argparse.Namespace, command: Command, heavy: bool):
    """What ``command.prepare`` makes of the flags, then the run directory and the data they
    name checked, all before Keras is imported (4 s on a 2-core CPU), so that a typo is
    answered at once."""
    prepared = command.prepare(args) if command.prepare else None
    if heavy:  # the runtime's own commands need neither check, nor tqdm that they import
        from edgekit.train.data import data_path
        from edgekit.train.finished_run import check_finished_run

        if getattr(args, "run_dir", None) is not None:
            check_finished_run(args.run_dir)
        if getattr(args, "data", None):
            data_path(args.data)
    return prepared


def _dispatch(args: argparse.Namespace) -> int:
    from edgekit.benchmarks.bench_cli import benches_files_alone
    from edgekit.common.quiet_import import import_keras

    from .heavy_imports import EXTRAS
    from .outcome import exit_status

    command = commands()[args.command]

    def prepare_and_run() -> int:
        # Converted files measured alone, as on a device with the runtime only: no Keras.
        heavy = args.command in EXTRAS and not benches_files_alone(args)
        prepared = _prepared(args, command, heavy)
        # The pipeline imports Keras as its stages run, so a finished run, or each finished
        # cell of a resumed study, is answered in half a second, not five.
        if heavy and args.command != "pipeline":
            import_keras()
        return command.run(args, prepared)

    return exit_status(args.command, prepare_and_run)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; user errors print one line and return 2, Ctrl-C returns 130, and a
    closed output pipe ends quietly with 141 (edgekit.outcome)."""
    from .outcome import command_status

    # TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) hides our own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    return command_status(args.command, lambda: _dispatch(args))


if __name__ == "__main__":
    sys.exit(main())
