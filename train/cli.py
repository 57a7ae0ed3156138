"""Flags of ``edgekit train`` and ``edgekit evaluate``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
from pathlib import Path

from .config import TrainConfig
from .recipes import DEFAULT_RECIPE, RECIPES

ARCH_NAMES = ("seed_cnn", "resnet8", "ds_cnn")  # keep in step with models.ARCHITECTURES (tested)
# The smallest --image-size each architecture can take: seed_cnn's three unpadded 2 x 2
# poolings need 8 pixels; the others pad (tested).
MIN_IMAGE_SIZE = {"seed_cnn": 8, "resnet8": 1, "ds_cnn": 1}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the training flags (kebab-case, typed, defaults shown by --help)."""
    recipe_help = "; ".join(
        f"{r.name}: {r.epochs} epochs, batch {r.batch_size}, lr {r.learning_rate:g}"
        for r in RECIPES.values()
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="cifar10",
                      help="'cifar10' (Keras download, cached in ~/.keras), an image-folder tree "
                           "(PATH/train/<class>/* + PATH/test/<class>/* (or val/), "
                           "PATH/train/<class>/* alone, or PATH/<class>/*), or "
                           "cifar-10-python.tar.gz / cifar-10-batches-py")
    data.add_argument("--split", default="standard",
                      help="'standard' (keep the official test set, carve validation out of "
                           "train) or TRAIN/VAL/TEST percentages, e.g. 70/15/15 as in the "
                           "reference project")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="standard split: share of each training class held out for validation")
    data.add_argument("--image-size", type=int, default=32,
                      help="images are center-cropped to a square and resized to this many pixels")
    data.add_argument("--cache-dir", type=Path, default=None,
                      help="where decoded image folders are cached (default: $EDGEKIT_CACHE or "
                           "~/.cache/edgekit)")
    data.add_argument("--no-cache", action="store_true", help="decode images without caching")

    model = parser.add_argument_group("model")
    model.add_argument("--arch", default="seed_cnn", help=f"architecture: {', '.join(ARCH_NAMES)}")
    model.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    model.add_argument("--init-from", default=None, metavar="RUN_DIR",
                       help="start from the weights of a finished run's model (same --arch, "
                            "--width, classes and image size): a second training cycle, or "
                            "fine-tuning on new images of the same classes")

    recipe = parser.add_argument_group("recipe (unset flags come from --recipe)")
    recipe.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES),
                        help=f"training recipe ({recipe_help})")
    recipe.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    recipe.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    recipe.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    recipe.add_argument("--optimizer", default=None, choices=("adam", "adamw", "sgd"),
                        help="override the optimizer (sgd: Nesterov momentum 0.9)")
    recipe.add_argument("--weight-decay", type=float, default=None,
                        help="override the decoupled weight decay (AdamW, SGD)")
    recipe.add_argument("--label-smoothing", type=float, default=None,
                        help="override the label smoothing")
    recipe.add_argument("--crop-pad", type=int, default=None,
                        help="override the random crop's padding in pixels (0: no crop)")
    recipe.add_argument("--cutout", type=int, default=None,
                        help="override the side of the Cutout square in pixels (0: off)")
    recipe.add_argument("--mixup", type=float, default=None, metavar="ALPHA",
                        help="override mixup: blend each image and its label with another's "
                             "by a Beta(ALPHA, ALPHA) weight (0 = off)")
    recipe.add_argument("--sam", type=float, default=None, metavar="RHO",
                        help="override sharpness-aware minimization: each step follows the "
                             "gradient taken RHO along the normalised gradient (about twice "
                             "the time per step; 0 = off)")
    recipe.add_argument("--teacher", default=None,
                        help="a finished run directory whose model the new one learns from "
                             "(knowledge distillation; same classes and image size)")
    recipe.add_argument("--distill-weight", type=float, default=None,
                        help="with --teacher: share of the loss that follows the teacher "
                             "(default 0.9)")
    recipe.add_argument("--distill-temperature", type=float, default=None,
                        help="with --teacher: softening temperature (default 4)")

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=Path("runs/latest"),
                     help="run directory to create")
    run.add_argument("--seed", type=int, default=0, help="seed for splits, init and augmentation")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in OUT.partial from its last epoch")
    run.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    run.add_argument("--tensorboard", action="store_true",
                     help="write TensorBoard logs to OUT/tensorboard")


# Train flags whose setting has another name in a run's config.json (setting_differences
# spells the others as their flags).
SETTING_OF_FLAG = {"--lr": "learning-rate", "--sam": "sam-rho"}


def check_train_args(args: argparse.Namespace) -> TrainConfig:
    """``config_from_args``, and on ``--resume`` a UserError for a flag typed with another
    value than the interrupted run was started with: --resume continues a run with its stored
    settings, which used to ignore such a flag without a word. ``args.given`` holds the
    flags typed (edgekit.cli sets it); without it nothing is compared."""
    from edge_runtime.errors import UserError

    from .config import setting_differences
    from .finished_run import read_run_config, staging_dir

    asked = config_from_args(args)
    stored = staging_dir(args.out) / "config.json"
    if not args.resume or not stored.is_file():  # train_run says "nothing to resume"
        return asked
    typed = {SETTING_OF_FLAG.get(flag, flag[2:]) for flag in getattr(args, "given", ())}
    differences = setting_differences(read_run_config(stored)["settings"], asked, typed)
    if differences:
        raise UserError(f"{stored.parent} was started with other settings than asked "
                        f"({'; '.join(differences)}): --resume continues it as it was started, "
                        "so leave those flags out, or pass --overwrite instead of --resume to "
                        "start again with them")
    return asked


def run_train(args: argparse.Namespace) -> int:
    """Build the config from flags, train, and print the headline figures."""
    from .run import train_run

    metrics = train_run(check_train_args(args), resume=args.resume, overwrite=args.overwrite)
    print(f"{accuracy_summary(metrics)}, {metrics['seconds_per_epoch']:.1f} s/epoch "
          f"-> {args.out}")
    return 0


# numpy's legacy global seed (which Keras' set_random_seed sets) takes 32 bits, unsigned.
SEED_RANGE = range(2**32)


def check_seed(seed: int) -> None:
    """UserError for a ``--seed`` that the random generators seeded with it would refuse."""
    from edge_runtime.errors import UserError

    if seed not in SEED_RANGE:
        raise UserError(f"--seed must be between 0 and {SEED_RANGE[-1]}, got {seed}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved settings ``edgekit train`` runs with for these flags (recipe defaults
    filled in), every value checked; UserError for a bad one."""
    from edge_runtime.errors import UserError, check_counts

    from .data import check_outside_data
    from .image_folder import check_cache_dir, default_cache_dir
    from .recipes import resolve_recipe
    from .splits import check_val_fraction, parse_split

    check_counts(("--epochs", args.epochs), ("--batch-size", args.batch_size),
                 ("--image-size", args.image_size))
    # Written as "not ... >=" and "not ... >" so that a NaN is refused too.
    for flag, value in (("--crop-pad", args.crop_pad), ("--cutout", args.cutout),
                        ("--weight-decay", args.weight_decay), ("--mixup", args.mixup),
                        ("--sam", args.sam)):
        if value is not None and not value >= 0:
            raise UserError(f"{flag} must be 0 or more, got {value}")
    # --width too is checked here, before the data are decoded, not by the model builder after.
    for flag, value in (("--lr", args.lr), ("--distill-temperature", args.distill_temperature),
                        ("--width", args.width)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be positive, got {value}")
    if args.label_smoothing is not None and not 0 <= args.label_smoothing < 1:
        raise UserError(f"--label-smoothing must be at least 0 and below 1, "
                        f"got {args.label_smoothing}")
    parse_split(args.split)
    check_val_fraction(args.val_fraction)
    check_seed(args.seed)
    if args.distill_weight is not None and not 0 <= args.distill_weight <= 1:
        raise UserError(f"--distill-weight must be between 0 and 1, got {args.distill_weight}")
    recipe = resolve_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size,
                            learning_rate=args.lr, optimizer=args.optimizer,
                            weight_decay=args.weight_decay,
                            label_smoothing=args.label_smoothing, crop_pad=args.crop_pad,
                            cutout=args.cutout, mixup=args.mixup, sam_rho=args.sam,
                            distill_weight=args.distill_weight,
                            distill_temperature=args.distill_temperature,
                            teacher=str(Path(args.teacher).resolve()) if args.teacher else None)
    cache_dir = None if args.no_cache else str(check_cache_dir(args.cache_dir
                                                               or default_cache_dir()))
    check_outside_data(args.data, out=args.out, cache_dir=cache_dir)
    config = TrainConfig(data=args.data, out=str(args.out), arch=args.arch,
                         width=args.width, recipe=recipe, split=args.split,
                         val_fraction=args.val_fraction, seed=args.seed,
                         image_size=args.image_size, cache_dir=cache_dir,
                         tensorboard=args.tensorboard,
                         init_from=str(Path(args.init_from).resolve()) if args.init_from else None)
    if args.arch not in ARCH_NAMES:
        raise UserError(f"unknown --arch {args.arch!r}: choose one of {', '.join(ARCH_NAMES)}")
    if args.image_size < MIN_IMAGE_SIZE[args.arch]:
        raise UserError(f"--image-size {args.image_size} is too small for {args.arch}: it "
                        f"takes at least {MIN_IMAGE_SIZE[args.arch]} pixels")
    return config


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit evaluate``."""
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--data", default=None,
                        help="data to evaluate on (default: the run's own --data, same split)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="decoded-image cache (default: $EDGEKIT_CACHE or ~/.cache/edgekit)")


def accuracy_summary(metrics: dict) -> str:
    """One line of a run's metrics: test accuracy and loss, and how well it fits its own
    training and validation images (a gap between them is overfitting)."""
    return (f"test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
            f"(training split {metrics['train_accuracy']:.4f}, validation "
            f"{metrics['val_accuracy']:.4f})")


def check_evaluate_args(args: argparse.Namespace) -> Path:
    """The decode cache ``edgekit evaluate`` uses; UserError when --cache-dir is a file."""
    from .image_folder import check_cache_dir, default_cache_dir

    return check_cache_dir(args.cache_dir or default_cache_dir())


def run_evaluate(args: argparse.Namespace) -> int:
    """Recompute metrics.json and the pictures of a run."""
    from edgekit.common.folder_lock import folder_held

    from .evaluate import evaluate_run

    with folder_held(args.run_dir):  # not a run being converted or benchmarked right now
        metrics = evaluate_run(args.run_dir, args.data, check_evaluate_args(args))
    print(f"{accuracy_summary(metrics)} -> {args.run_dir}/metrics.json")
    return 0
