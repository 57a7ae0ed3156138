"""Flags of ``edgekit convert``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from edgekit.common.flags import add_setting

from .settings import ConvertSettings
from .variants import VARIANTS

DEFAULTS = ConvertSettings()


def add_convert_settings(parser, seed: bool = True) -> None:
    """Register the flags that make a conversion's settings (ConvertSettings). Each defaults to
    None, "not given", so that settings a manifest records fill what is not given when the
    pipeline compares them. ``seed=False`` leaves --seed out, for a command whose training
    registers it (the pipeline's one --seed serves both)."""
    add_setting(parser, "--variants", f"comma-separated subset of: {', '.join(VARIANTS)}",
                "all")
    add_setting(parser, "--calibration-size", "training images used to calibrate integer "
                "variants", DEFAULTS.calibration_size, type=int)
    add_setting(parser, "--probe-size", "validation images each artifact is checked on "
                "against Keras", DEFAULTS.probe_size, type=int)
    if seed:
        add_setting(parser, "--seed", "seed of both samples and of the quantization-aware "
                    "fine-tuning", DEFAULTS.seed, type=int)
    add_setting(parser, "--qat-epochs", "epochs of quantization-aware fine-tuning (qat-int8)",
                DEFAULTS.qat_epochs, type=int)
    add_setting(parser, "--qat-learning-rate", "Adam learning rate of the quantization-aware "
                "fine-tuning", f"{DEFAULTS.qat_learning_rate:g}", type=float)
    add_setting(parser, "--max-drop", "accuracy budget of variants int8-mixed and "
                "onnx-int8-mixed, made only with it: the layers that lose most stay float until the validation accuracy is "
                "within this many points of Keras", None, type=float, metavar="POINTS")
    add_setting(parser, "--no-fold-batchnorm", "quantize the graph as trained instead of the "
                "equivalent one with post-ReLU BatchNorm folded away", dest="fold_batchnorm",
                action="store_false")


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit convert``."""
    parser.add_argument("run_dir", type=Path, help="a finished training run directory")
    parser.add_argument("--data", default=None,
                        help="where the run's data is now, if it moved (default: as trained)")
    add_convert_settings(parser)
    add_device_check_flag(parser)


def add_device_check_flag(parser) -> None:
    """--no-device-check: not a setting of the files (nothing about them changes), so not
    recorded or compared."""
    parser.add_argument("--no-device-check", dest="device_check", action="store_false",
                        help="skip probing the files in the environments edgekit check has "
                             "ready (this machine's runtimes, emulated Pis once built)")


def convert_given(args: argparse.Namespace) -> dict:
    """The ConvertSettings fields these flags set (those given), with their values; UserError
    for an unknown variant."""
    from .variants import parse_variants

    given = {"calibration_size": args.calibration_size, "probe_size": args.probe_size,
             "seed": args.seed, "qat_epochs": args.qat_epochs,
             "qat_learning_rate": args.qat_learning_rate, "fold_batchnorm": args.fold_batchnorm,
             "data": args.data, "max_drop": args.max_drop}
    if args.variants is not None:
        given["variants"] = tuple(variant.name for variant in parse_variants(args.variants))
    return {key: value for key, value in given.items() if value is not None}


def convert_settings(args: argparse.Namespace) -> ConvertSettings:
    """The settings ``edgekit convert`` runs with for these flags; UserError for a bad value.
    Imports nothing heavy, so the pipeline checks them before training."""
    return replace(DEFAULTS, **convert_given(args))


def convert_and_report(run_dir: Path, settings: ConvertSettings,
                       device_check: bool = True) -> int:
    """Convert (edgekit convert's work, also the pipeline's convert stage), print a line per
    variant, check where the files run (``device_check``), and return 1 if any requested
    variant failed."""
    from edgekit.common.folder_lock import folder_held

    from .pipeline import convert_run

    # Two conversions of one run at once would each rewrite its manifest with their own
    # variants; a benchmark meanwhile would measure files being replaced.
    with folder_held(run_dir):
        manifest, failed = convert_run(run_dir, settings)
        if device_check and len(failed) < len(settings.chosen_variants()):
            from .check_cli import check_converted

            check_converted(Path(run_dir) / "artifacts")
    asked = len(settings.chosen_variants())
    print(f"{asked - len(failed)}/{asked} variants -> {run_dir / 'artifacts'}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_convert(args: argparse.Namespace, settings: ConvertSettings) -> int:
    """``edgekit convert``: convert the run with the checked ``settings`` of these flags."""
    return convert_and_report(args.run_dir, settings, args.device_check)
