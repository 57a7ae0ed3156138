"""Flags of ``edgekit convert``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
from pathlib import Path

from .variants import VARIANTS


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the conversion flags."""
    parser.add_argument("run_dir", type=Path, help="a finished training run directory")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--calibration-size", type=int, default=500,
                        help="training images used to calibrate integer variants")
    parser.add_argument("--probe-size", type=int, default=500,
                        help="validation images each artifact is checked on against Keras")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of both samples and of the quantization-aware fine-tuning")
    parser.add_argument("--qat-epochs", type=int, default=2,
                        help="epochs of quantization-aware fine-tuning (qat-int8)")
    parser.add_argument("--qat-learning-rate", type=float, default=1e-4,
                        help="Adam learning rate of the quantization-aware fine-tuning")
    parser.add_argument("--no-fold-batchnorm", action="store_true",
                        help="quantize the graph as trained instead of the equivalent one with "
                             "post-ReLU BatchNorm folded away")
    parser.add_argument("--data", default=None,
                        help="where the run's data is now, if it moved (default: as trained)")


def check_convert_args(args: argparse.Namespace) -> list:
    """The requested variants; UserError for a bad flag value. Imports nothing heavy, so
    ``edgekit pipeline`` checks its conversion flags with it before training."""
    from edge_runtime.errors import UserError, check_counts
    from edgekit.train.cli import check_seed

    from .samples import check_sample_sizes
    from .variants import parse_variants

    variants = parse_variants(args.variants)
    check_sample_sizes(args.calibration_size, args.probe_size)
    check_seed(args.seed)
    check_counts(("--qat-epochs", args.qat_epochs))
    if not args.qat_learning_rate > 0:
        raise UserError(f"--qat-learning-rate must be positive, got {args.qat_learning_rate}")
    return variants


def run_convert(args: argparse.Namespace) -> int:
    """Convert, print a line per variant, and return 1 if any requested variant failed."""
    from edgekit.common.folder_lock import folder_held

    from .pipeline import convert_run

    variants = check_convert_args(args)
    # Two conversions of one run at once would each rewrite its manifest with their own
    # variants; a benchmark meanwhile would measure files being replaced.
    with folder_held(args.run_dir):
        manifest, failed = convert_run(args.run_dir, variants, args.calibration_size,
                                       args.probe_size, args.seed, args.data, args.qat_epochs,
                                       args.qat_learning_rate, not args.no_fold_batchnorm)
    done = len(variants) - len(failed)
    print(f"{done}/{len(variants)} variants -> {args.run_dir / 'artifacts'}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
