"""Flags of ``edgekit train`` and ``edgekit evaluate``; parsing imports nothing heavy."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgekit.common.flags import add_setting

from .config import TrainConfig
from .recipes import DEFAULT_RECIPE, RECIPES

ARCH_NAMES = ("seed_cnn", "resnet8", "ds_cnn")  # keep in step with models.ARCHITECTURES (tested)
# The smallest --image-size each architecture can take: seed_cnn's three unpadded 2 x 2
# poolings need 8 pixels; the others pad (tested).
MIN_IMAGE_SIZE = {"seed_cnn": 8, "resnet8": 1, "ds_cnn": 1}


DEFAULTS = TrainConfig()


def add_train_settings(parser) -> list[argparse.Action]:
    """Register the flags that make a training's settings (TrainConfig): every train flag but
    where the data and the run are (--data, --out) and --resume/--overwrite. Each is None
    unless typed (edgekit.common.flags): a run's settings fill what is not given (TrainConfig's
    defaults for a new run, the stored ones on --resume). Returns the flags' actions, for the
    pipeline and the study's grid files."""
    recipe_help = "; ".join(
        f"{r.name}: {r.epochs} epochs, batch {r.batch_size}, lr {r.learning_rate:g}"
        for r in RECIPES.values()
    )
    data = parser.add_argument_group("data")
    model = parser.add_argument_group("model")
    recipe = parser.add_argument_group("recipe (unset flags come from --recipe)")
    run = parser.add_argument_group("run")
    return [
        add_setting(data, "--split", "'standard' (keep the official test set, carve validation "
                    "out of train) or TRAIN/VAL/TEST percentages, e.g. 70/15/15 as in the "
                    "reference project", DEFAULTS.split),
        add_setting(data, "--val-fraction", "standard split: share of each training class held "
                    "out for validation", DEFAULTS.val_fraction, type=float),
        add_setting(data, "--image-size", "images are center-cropped to a square and resized "
                    "to this many pixels", DEFAULTS.image_size, type=int),
        add_setting(data, "--cache-dir", "where decoded image folders are cached",
                    "$EDGEKIT_CACHE or ~/.cache/edgekit", type=Path),
        add_setting(data, "--no-cache", "decode images without caching", action="store_true"),
        add_setting(model, "--arch", f"architecture: {', '.join(ARCH_NAMES)}", DEFAULTS.arch),
        add_setting(model, "--width", "channel multiplier", DEFAULTS.width, type=float),
        add_setting(model, "--init-from", "start from the weights of a finished run's model "
                    "(same --arch, --width, classes and image size): a second training cycle, "
                    "or fine-tuning on new images of the same classes", metavar="RUN_DIR"),
        add_setting(recipe, "--recipe", f"training recipe ({recipe_help})", DEFAULT_RECIPE,
                    choices=sorted(RECIPES)),
        add_setting(recipe, "--epochs", "override the recipe's epochs", type=int),
        add_setting(recipe, "--batch-size", "override the batch size", type=int),
        add_setting(recipe, "--lr", "override the peak learning rate", type=float),
        add_setting(recipe, "--warmup-epochs", "override the epochs of linear warm-up to the "
                    "peak learning rate (cosine schedule)", type=float),
        add_setting(recipe, "--optimizer", "override the optimizer (sgd: Nesterov momentum 0.9)",
                    choices=("adam", "adamw", "sgd")),
        add_setting(recipe, "--weight-decay", "override the decoupled weight decay (AdamW, SGD)",
                    type=float),
        add_setting(recipe, "--label-smoothing", "override the label smoothing", type=float),
        add_setting(recipe, "--crop-pad", "override the random crop's padding in pixels (0: no "
                    "crop)", type=int),
        add_setting(recipe, "--cutout", "override the side of the Cutout square in pixels (0: "
                    "off)", type=int),
        add_setting(recipe, "--mixup", "override mixup: blend each image and its label with "
                    "another's by a Beta(ALPHA, ALPHA) weight (0 = off)", type=float,
                    metavar="ALPHA"),
        add_setting(recipe, "--sam", "override sharpness-aware minimization: each step follows "
                    "the gradient taken RHO along the normalised gradient (about twice the time "
                    "per step; 0 = off)", type=float, metavar="RHO"),
        add_setting(recipe, "--teacher", "a finished run directory whose model the new one "
                    "learns from (knowledge distillation; same classes and image size)"),
        add_setting(recipe, "--distill-weight", "with --teacher: share of the loss that follows "
                    "the teacher", DEFAULTS.recipe.distill_weight, type=float),
        add_setting(recipe, "--distill-temperature", "with --teacher: softening temperature",
                    f"{DEFAULTS.recipe.distill_temperature:g}", type=float),
        add_setting(run, "--seed", "seed for splits, init and augmentation", DEFAULTS.seed,
                    type=int),
        add_setting(run, "--tensorboard", "write TensorBoard logs to OUT/tensorboard",
                    action="store_true"),
        add_setting(run, "--time-budget", "minutes of training: after the first epoch, the "
                    "learning-rate schedule is laid out over the epochs that fit (at most the "
                    "recipe's), and training ends with it completed", type=float,
                    metavar="MINUTES"),
    ]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit train`` (kebab-case, typed, defaults shown by --help)."""
    parser.add_argument("--data", default=DEFAULTS.data,
                        help="'cifar10' (Keras download, cached in ~/.keras), an image-folder tree "
                             "(PATH/train/<class>/* + PATH/test/<class>/* (or val/), "
                             "PATH/train/<class>/* alone, or PATH/<class>/*), or "
                             "cifar-10-python.tar.gz / cifar-10-batches-py")
    parser.add_argument("--out", type=Path, default=Path(DEFAULTS.out),
                        help="run directory to create")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in OUT.partial from its last epoch")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    add_train_settings(parser)


def check_train_args(args: argparse.Namespace) -> TrainConfig:
    """``config_from_args``, and on ``--resume`` a UserError for a flag typed with another
    value than the interrupted run was started with: --resume continues a run with its stored
    settings, and a flag that asked for others would be ignored without a word."""
    from edge_runtime.errors import UserError

    from .config import setting_differences
    from .finished_run import read_run_config, staging_dir

    asked = config_from_args(args)
    stored = staging_dir(args.out) / "config.json"
    if not args.resume or not stored.is_file():  # train_run says "nothing to resume"
        return asked
    settings = read_run_config(stored)["settings"]
    # The stored settings with the flags typed on top: only those can differ.
    differences = setting_differences(settings, config_from_args(
        args, TrainConfig.from_dict(settings)))
    if differences:
        raise UserError(f"{stored.parent} was started with other settings than asked "
                        f"({'; '.join(differences)}): --resume continues it as it was started, "
                        "so leave those flags out, or pass --overwrite instead of --resume to "
                        "start again with them")
    return asked


def train_and_report(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> int:
    """Train ``config`` (edgekit train's work, also the pipeline's train stage) and print the
    headline figures."""
    from .run import train_run

    metrics = train_run(config, resume=resume, overwrite=overwrite)
    split = metrics.get("epoch_seconds_split")
    where = (f" (waiting for batches {split['input']:.1f} s, training steps {split['step']:.1f} "
             f"s, validation {split['validation']:.1f} s)") if split else ""
    print(f"{accuracy_summary(metrics)}, {metrics['seconds_per_epoch']:.1f} s/epoch{where} "
          f"-> {config.out}")
    return 0


def run_train(args: argparse.Namespace, config: TrainConfig) -> int:
    """``edgekit train``: train the checked ``config`` of these flags."""
    return train_and_report(config, resume=args.resume, overwrite=args.overwrite)


# numpy's legacy global seed (which Keras' set_random_seed sets) takes 32 bits, unsigned.
SEED_RANGE = range(2**32)


def check_seed(seed: int) -> None:
    """UserError for a ``--seed`` that the random generators seeded with it would refuse."""
    from edge_runtime.errors import UserError

    if seed not in SEED_RANGE:
        raise UserError(f"--seed must be between 0 and {SEED_RANGE[-1]}, got {seed}")


def config_from_args(args: argparse.Namespace, base: TrainConfig = DEFAULTS) -> TrainConfig:
    """The resolved settings ``edgekit train`` runs with for these flags: each flag given
    (not None) on top of ``base`` (a new run's defaults, or a run's stored settings), every
    value checked; UserError for a bad one. Where the data, the run and the cache are come
    from the flags (or their defaults) alone."""
    from edge_runtime.errors import UserError, check_counts

    from .data import check_outside_data
    from .image_folder import check_cache_dir, default_cache_dir
    from .splits import check_val_fraction, parse_split

    check_counts(("--epochs", args.epochs), ("--batch-size", args.batch_size),
                 ("--image-size", args.image_size))
    # Written as "not ... >=" and "not ... >" so that a NaN is refused too.
    for flag, value in (("--crop-pad", args.crop_pad), ("--cutout", args.cutout),
                        ("--weight-decay", args.weight_decay), ("--mixup", args.mixup),
                        ("--sam", args.sam), ("--warmup-epochs", args.warmup_epochs)):
        if value is not None and not value >= 0:
            raise UserError(f"{flag} must be 0 or more, got {value}")
    # --width too is checked here, before the data are decoded, not by the model builder after.
    for flag, value in (("--lr", args.lr), ("--distill-temperature", args.distill_temperature),
                        ("--width", args.width)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be positive, got {value}")
    time_budget = getattr(args, "time_budget", None)
    if time_budget is not None and not 0 < time_budget < float("inf"):
        raise UserError(f"--time-budget must be a positive number of minutes, got {time_budget}")
    if args.label_smoothing is not None and not 0 <= args.label_smoothing < 1:
        raise UserError(f"--label-smoothing must be at least 0 and below 1, "
                        f"got {args.label_smoothing}")
    if args.distill_weight is not None and not 0 <= args.distill_weight <= 1:
        raise UserError(f"--distill-weight must be between 0 and 1, got {args.distill_weight}")

    def given(value, fallback):
        return fallback if value is None else value

    split, val_fraction = given(args.split, base.split), given(args.val_fraction, base.val_fraction)
    seed, arch = given(args.seed, base.seed), given(args.arch, base.arch)
    image_size = given(args.image_size, base.image_size)
    parse_split(split)
    check_val_fraction(val_fraction)
    check_seed(seed)
    if arch not in ARCH_NAMES:
        raise UserError(f"unknown --arch {arch!r}: choose one of {', '.join(ARCH_NAMES)}")
    if image_size < MIN_IMAGE_SIZE[arch]:
        raise UserError(f"--image-size {image_size} is too small for {arch}: it "
                        f"takes at least {MIN_IMAGE_SIZE[arch]} pixels")
    data = getattr(args, "data", None) or DEFAULTS.data
    out = getattr(args, "out", None) or DEFAULTS.out
    cache_dir = None if args.no_cache else str(check_cache_dir(args.cache_dir
                                                               or default_cache_dir()))
    check_outside_data(data, out=out, cache_dir=cache_dir)
    init_from = str(Path(args.init_from).resolve()) if args.init_from else base.init_from
    return TrainConfig(data=data, out=str(out), arch=arch, width=given(args.width, base.width),
                       recipe=_recipe(args, base), split=split, val_fraction=val_fraction,
                       seed=seed, image_size=image_size, cache_dir=cache_dir,
                       tensorboard=bool(given(args.tensorboard, base.tensorboard)),
                       init_from=init_from, time_budget=given(time_budget, base.time_budget))


def _recipe(args: argparse.Namespace, base: TrainConfig):
    """--recipe (or ``base``'s recipe) with the recipe flags given on top."""
    from dataclasses import replace

    from .recipes import resolve_recipe

    overrides = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                     warmup_epochs=args.warmup_epochs,
                     optimizer=args.optimizer, weight_decay=args.weight_decay,
                     label_smoothing=args.label_smoothing, crop_pad=args.crop_pad,
                     cutout=args.cutout, mixup=args.mixup, sam_rho=args.sam,
                     distill_weight=args.distill_weight,
                     distill_temperature=args.distill_temperature,
                     teacher=str(Path(args.teacher).resolve()) if args.teacher else None)
    if args.recipe:
        return resolve_recipe(args.recipe, **overrides)
    return replace(base.recipe, **{k: v for k, v in overrides.items() if v is not None})


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


def run_evaluate(args: argparse.Namespace, cache_dir: Path) -> int:
    """Recompute metrics.json and the pictures of a run, decoding into ``cache_dir``."""
    from edgekit.common.folder_lock import folder_held

    from .evaluate import evaluate_run

    with folder_held(args.run_dir):  # not a run being converted or benchmarked right now
        metrics = evaluate_run(args.run_dir, args.data, cache_dir)
    print(f"{accuracy_summary(metrics)} -> {args.run_dir}/metrics.json")
    return 0
