"""The ``edgekit`` command. Thin: it parses flags and imports a stage only when its subcommand
runs, so ``--help`` is instant and runtime commands never load TensorFlow."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Optional, Sequence

from . import __version__


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except where there is no meaningful default to show, and keeps the
    line breaks of descriptions and epilogs (the study's grid-file example is TOML)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per stage command."""
    from edge_runtime.camera import add_camera_arguments, run_camera
    from edge_runtime.classify_command import add_classify_arguments, run_classify
    from edgekit.benchmarks.bench_cli import add_bench_arguments, run_bench_command
    from edgekit.convert.cli import add_convert_arguments, run_convert
    from edgekit.train.cli import (
        add_evaluate_arguments,
        add_train_arguments,
        run_evaluate,
        run_train,
    )

    from .pipeline import add_pipeline_arguments, run_pipeline
    from .study import add_study_arguments, run_study

    parser = argparse.ArgumentParser(
        prog="edgekit", formatter_class=_HelpFormatter,
        description="Train an image classifier, convert it for small devices, and measure\n"
                    "what each deployment choice costs.")
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    subcommands = [
        ("train", "train a CNN on CIFAR-10 or image folders into a run directory",
         add_train_arguments, run_train),
        ("evaluate", "recompute metrics.json and the pictures of a finished run",
         add_evaluate_arguments, run_evaluate),
        ("convert", "turn RUN_DIR/model.keras into verified TFLite and ONNX variants",
         add_convert_arguments, run_convert),
        ("classify", "classify image files, folders or globs with a .tflite/.onnx model "
                     "(no TensorFlow needed)", add_classify_arguments, run_classify),
        ("camera", "classify live frames from the Pi camera, a USB camera, a video file or a "
                   "folder", add_camera_arguments, run_camera),
        ("bench", "measure accuracy, latency, memory and size of every variant against the "
                  "Keras model into RUN_DIR/report (or of converted files alone, on a device)",
         add_bench_arguments, run_bench_command),
        ("pipeline", "train, convert and bench in one resumable command",
         add_pipeline_arguments, run_pipeline),
        ("study", "train, convert and bench a grid of architectures and widths; Pareto plots",
         add_study_arguments, run_study),
    ]
    for name, help_text, add_arguments, handler in subcommands:
        subparser = commands.add_parser(name, help=help_text, description=help_text[:1].upper()
                                        + help_text[1:] + ".", formatter_class=_HelpFormatter)
        add_arguments(subparser)
        subparser.set_defaults(handler=handler)
    return parser


# What the user can do after Ctrl-C, by command.
RESUME_HINTS = {
    "train": "; the run continues with --resume",
    "pipeline": "; the same command resumes where it stopped",
    "study": "; the same command resumes where it stopped",
}


def _check_before_keras(args: argparse.Namespace) -> None:
    """A heavy command's flag values, then the run directory and the data it names, checked
    before Keras is imported (4 s on a 2-core CPU), so that a typo is answered at once. The
    stages check them again where they use them, with the same functions."""
    from edgekit.benchmarks.bench_cli import check_bench_args
    from edgekit.convert.cli import check_convert_args
    from edgekit.train.cli import check_evaluate_args, check_train_args
    from edgekit.train.data import data_path
    from edgekit.train.finished_run import check_finished_run

    from .pipeline import check_pipeline_args
    from .study import check_study_args

    flag_check = {"train": check_train_args, "evaluate": check_evaluate_args,
                  "convert": check_convert_args, "bench": check_bench_args,
                  "pipeline": check_pipeline_args, "study": check_study_args}.get(args.command)
    if flag_check:
        flag_check(args)
    if getattr(args, "run_dir", None) is not None:
        check_finished_run(args.run_dir)
    if getattr(args, "data", None):
        data_path(args.data)


def _dispatch(args: argparse.Namespace) -> int:
    from edge_runtime.errors import UserError, print_user_error
    from edgekit.benchmarks.bench_cli import benches_files_alone
    from edgekit.common.quiet_import import import_keras

    from .heavy_imports import EXTRAS, missing_package_message

    try:
        # Converted files measured alone, as on a device with the runtime only: no Keras.
        if args.command in EXTRAS and not benches_files_alone(args):
            _check_before_keras(args)
            # The pipeline's stages import Keras as they run (run_command), so a finished run,
            # or each finished cell of a resumed study, is answered in half a second, not five.
            if args.command != "pipeline":
                import_keras()
        return args.handler(args)
    except (UserError, OSError) as exc:
        if not print_user_error(exc, "edgekit"):
            raise
        return 2
    except ModuleNotFoundError as exc:
        message = missing_package_message(args.command, exc)
        if message is None:
            raise
        print(f"edgekit: error: {message}", file=sys.stderr)
        return 2


def parse_command(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The parsed command line, with ``given``: the long flags typed on it, each by its full
    name (argparse takes ``--epo`` for ``--epochs``), so that a command can tell a flag given
    its default value from one left out (train --resume does)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    subparser = parser._subparsers._group_actions[0].choices[args.command]
    flags = [flag for flag in subparser._option_string_actions if flag.startswith("--")]
    options = argv[:argv.index("--")] if "--" in argv else argv  # after "--": file names
    typed = {word.split("=")[0] for word in options if word.startswith("--")}
    # parse_args took each typed flag, so it is a full name or the prefix of exactly one (a
    # value that starts with "--" matches none and is left out).
    args.given = {word if word in flags else matches[0] for word in typed
                  for matches in [[flag for flag in flags if flag.startswith(word)]] if matches}
    return args


def run_command(argv: Sequence[str]) -> int:
    """Run ``edgekit ARGV`` inside a command that chains others (the pipeline's stages): user
    errors print one line and return 2, as in :func:`main`, but Ctrl-C reaches the caller, so
    that it stops the whole chain instead of only the stage."""
    return _dispatch(parse_command(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; user errors print one line and return 2, Ctrl-C returns 130, and a
    closed output pipe (``edgekit classify ... | head``) ends quietly with 141, as shell tools do."""
    # TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) hides our own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_command(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(f"edgekit: interrupted{RESUME_HINTS.get(args.command, '')}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped reading. Point stdout at /dev/null so that Python's flush at exit
        # does not fail on the same pipe and print a second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
