"""Flags of ``edgekit convert``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from .settings import ConvertSettings
from .variants import VARIANTS

DEFAULTS = ConvertSettings()


def add_convert_settings(parser, seed: bool = True) -> None:
    """Register the flags that make a conversion's settings (ConvertSettings). Each defaults to
    None, "not given", so that settings a manifest records fill what is not given when the
    pipeline compares them. ``seed=False`` leaves --seed out, for a command whose training
    registers it (the pipeline's one --seed serves both)."""
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--calibration-size", type=int, default=None,
                        help="training images used to calibrate integer variants "
                             f"(default: {DEFAULTS.calibration_size})")
    parser.add_argument("--probe-size", type=int, default=None,
                        help="validation images each artifact is checked on against Keras "
                             f"(default: {DEFAULTS.probe_size})")
    if seed:
        parser.add_argument("--seed", type=int, default=None,
                            help="seed of both samples and of the quantization-aware "
                                 f"fine-tuning (default: {DEFAULTS.seed})")
    parser.add_argument("--qat-epochs", type=int, default=None,
                        help="epochs of quantization-aware fine-tuning (qat-int8) "
                             f"(default: {DEFAULTS.qat_epochs})")
    parser.add_argument("--qat-learning-rate", type=float, default=None,
                        help="Adam learning rate of the quantization-aware fine-tuning "
                             f"(default: {DEFAULTS.qat_learning_rate:g})")
    parser.add_argument("--no-fold-batchnorm", dest="fold_batchnorm", action="store_false",
                        default=None,
                        help="quantize the graph as trained instead of the equivalent one with "
                             "post-ReLU BatchNorm folded away")


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit convert``."""
    parser.add_argument("run_dir", type=Path, help="a finished training run directory")
    parser.add_argument("--data", default=None,
                        help="where the run's data is now, if it moved (default: as trained)")
    add_convert_settings(parser)


def convert_given(args: argparse.Namespace) -> dict:
    """The ConvertSettings fields these flags set (those given), with their values; UserError
    for an unknown variant."""
    from .variants import parse_variants

    given = {"calibration_size": args.calibration_size, "probe_size": args.probe_size,
             "seed": args.seed, "qat_epochs": args.qat_epochs,
             "qat_learning_rate": args.qat_learning_rate, "fold_batchnorm": args.fold_batchnorm,
             "data": args.data}
    if args.variants is not None:
        given["variants"] = tuple(variant.name for variant in parse_variants(args.variants))
    return {key: value for key, value in given.items() if value is not None}


def convert_settings(args: argparse.Namespace) -> ConvertSettings:
    """The settings ``edgekit convert`` runs with for these flags; UserError for a bad value.
    Imports nothing heavy, so the pipeline checks them before training."""
    return replace(DEFAULTS, **convert_given(args))


def convert_and_report(run_dir: Path, settings: ConvertSettings) -> int:
    """Convert (edgekit convert's work, also the pipeline's convert stage), print a line per
    variant, and return 1 if any requested variant failed."""
    from edgekit.common.folder_lock import folder_held

    from .pipeline import convert_run

    # Two conversions of one run at once would each rewrite its manifest with their own
    # variants; a benchmark meanwhile would measure files being replaced.
    with folder_held(run_dir):
        manifest, failed = convert_run(run_dir, settings)
    asked = len(settings.chosen_variants())
    print(f"{asked - len(failed)}/{asked} variants -> {run_dir / 'artifacts'}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_convert(args: argparse.Namespace, settings: ConvertSettings) -> int:
    """``edgekit convert``: convert the run with the checked ``settings`` of these flags."""
    return convert_and_report(args.run_dir, settings)
