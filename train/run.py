"""One training run: data -> model -> fit (checkpointed per epoch) -> evaluation -> RUN_DIR.

A run is built in ``RUN_DIR.partial`` and renamed to ``RUN_DIR`` only when every file is
written, so a crash or Ctrl-C never leaves a half-written run directory. ``--resume`` picks the
partial run up at its last completed epoch, with its stored settings.
"""
from __future__ import annotations

import os
import platform
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from edge_runtime.errors import UserError
from edge_runtime.preprocess import (
    NORM_MEAN,
    NORM_STD,
    PREPROCESS_VERSION,
    scale_pixels,
)
from edgekit.common.atomic import atomic_path, missing, removed_if_left_empty, write_json
from edgekit.common.command_line import edgekit_command_line
from edgekit.common.folder_lock import FolderLock

from .checkpoint import CHECKPOINT, read_history
from .config import TrainConfig, compute_devices, library_versions
from .data import DataSplits, load_splits, recorded_data
from .distribute import distribution_plan, distribution_scope
from .finished_run import add_to_run_config, read_run_config, staging_dir
from .labels import write_labels


def _prepare_dirs(config: TrainConfig, resume: bool, overwrite: bool,
                  lock: FolderLock) -> tuple[TrainConfig, Path]:
    """Check RUN_DIR and its partial twin; on resume, return the stored settings. A partial
    run another process is training is refused (``lock`` takes it, and holds it on resume)."""
    out = Path(config.out)
    partial = staging_dir(out)
    if resume:
        stored = partial / "config.json"
        if not stored.is_file():
            done = " (it is already finished)" if (out / "model.keras").is_file() else ""
            raise UserError(f"nothing to resume: {partial} has no interrupted run{done}")
        lock.take(partial)
        config = TrainConfig.from_dict(read_run_config(stored)["settings"])
        return config, partial
    if partial.exists():
        lock.take(partial)  # a run still training there is not an interrupted one
    if out.exists() and not _replaceable(out):
        # A typo in --out must not cost a folder of someone's files at the end of a training.
        raise UserError(f"{out} exists and is not a run directory (no config.json): choose "
                        "another --out, or remove it yourself")
    if partial.exists() and not overwrite:
        raise UserError(f"an interrupted run exists at {partial}: pass --resume to continue "
                        "it or --overwrite to start again")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists: pass --overwrite to replace it")
    if out.exists():
        with FolderLock() as replaced:  # not a run being converted or benchmarked right now
            replaced.take(out)
    if partial.exists():
        shutil.rmtree(partial)
    # Checked before the data are decoded (minutes for a large folder), not when the run's
    # folder is made.
    nearest = next(folder for folder in out.absolute().parents if folder.exists())
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        raise UserError(f"cannot make {out}: {nearest} is not a folder this user can write to")
    return config, partial


def _replaceable(out: Path) -> bool:
    """Whether --overwrite may delete OUT: an empty folder or an earlier run's."""
    return out.is_dir() and (not any(out.iterdir()) or (out / "config.json").is_file())


def train_run(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Train (or resume) a run and write the finished run directory; returns metrics.json."""
    with FolderLock() as lock:
        return _train_locked(config, resume, overwrite, lock)


def _train_locked(config: TrainConfig, resume: bool, overwrite: bool, lock: FolderLock) -> dict:
    """``train_run``, with ``lock`` held on RUN_DIR.partial from when it exists until the run
    is renamed into place."""
    # A relative data path means nothing to the run's later stages started elsewhere.
    config = replace(config, data=recorded_data(config.data))
    config, partial = _prepare_dirs(config, resume, overwrite, lock)
    if config.tensorboard:
        try:
            import tensorboard  # noqa: F401  (Keras' callback needs it, and says so too late)
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package: "
                            "pip install tensorboard") from None
    # Data errors surface before anything is written.
    splits = load_splits(config)
    if resume:
        stored = read_run_config(partial / "config.json").get("data_fingerprint")
        if stored != splits.fingerprint:
            raise UserError(f"the data of {config.data} changed since {partial} started "
                            f"(fingerprint {splits.fingerprint}, was {stored}): start again "
                            "with --overwrite")
    for name, part in (("training", splits.train), ("validation", splits.val), ("test", splits.test)):
        if len(part) == 0:
            raise UserError(f"the {name} split is empty: use more images or another --split")

    import keras

    from .augment import EpochData, one_hot
    from .checkpoint import EpochCheckpoint, EpochProgress, history_of_checkpoint, restore_state
    from .distill import Distiller
    from .evaluate import EVAL_BATCH
    from .finished_run import load_run_model, start_from
    from .fused_batch_norm import fused_batch_norm
    from .input_timing import BatchWaits
    from .models import build_model
    from .optim import learning_rate, make_loss, make_optimizer
    from .prefetch import prefetch_depth, prefetched
    from .sharpness import StudentTrainer, check_sam_backend
    from .time_budget import epochs_within, planned_epochs, record_plan

    recipe = config.recipe
    num_classes = len(splits.class_names)
    input_shape = (config.image_size, config.image_size, 3)
    epochs_data = EpochData.for_recipe(splits.train.x, splits.train.y, num_classes, recipe,
                                       config.seed)
    history = read_history(partial / "history.csv") if resume else []
    keras.utils.set_random_seed(config.seed)
    devices = compute_devices()
    plan = distribution_plan(keras.backend.backend(), devices)
    check_sam_backend(recipe.sam_rho, keras.backend.backend(), plan)
    with distribution_scope(plan):
        student = build_model(config.arch, input_shape, num_classes, config.width)
        if recipe.teacher:
            model = Distiller(student, load_run_model(recipe.teacher, "--teacher",
                                                      splits.class_names, input_shape),
                              recipe.sam_rho)
        else:
            model = StudentTrainer(student, recipe.sam_rho) if recipe.sam_rho else student
        # A budgeted run resumed after its first epoch keeps the epochs it chose then.
        planned = planned_epochs(partial / "config.json") \
            if resume and (partial / "config.json").is_file() else None
        epochs = planned or recipe.epochs
        model.compile(optimizer=make_optimizer(recipe, epochs_data.steps(), epochs),
                      loss=make_loss(recipe, num_classes), metrics=["accuracy"])
        if resume and (partial / CHECKPOINT).is_file():
            history = history_of_checkpoint(history, restore_state(model, partial / CHECKPOINT),
                                            partial / "history.csv")
            print(f"resuming {partial} after epoch {len(history)} of {recipe.epochs} with its "
                  "stored settings (other flags are ignored)", file=sys.stderr)
        else:
            if config.init_from:
                start_from(student, config.init_from, splits.class_names)
            history = []
            created = missing(partial, *partial.parents)
            partial.mkdir(parents=True, exist_ok=True)
            lock.take(partial)  # a second run started at the same time stops here
            # A header that cannot be written (a full disk) leaves no empty folders behind.
            with removed_if_left_empty(created):
                _write_run_header(partial, config, splits, student, plan)

        print(f"training {config.arch} (width {config.width}, {student.count_params():,} "
              f"parameters) with recipe {recipe.name} on {', '.join(devices)} "
              f"[{keras.backend.backend()}, {plan}]", flush=True)
        validation = (scale_pixels(splits.val.x), one_hot(splits.val.y, num_classes))
        waits = BatchWaits()

        def fit(last_epoch: int) -> None:
            """Train from the epoch after the last in ``history`` to ``last_epoch``, on batches
            begun afresh at that epoch (as seeded: whatever an earlier fit pulled ahead)."""
            callbacks = [EpochProgress(last_epoch, epochs_data.steps()),
                         EpochCheckpoint(partial, history, waits)]
            if config.tensorboard:
                callbacks.append(keras.callbacks.TensorBoard(log_dir=str(partial / "tensorboard")))
            with fused_batch_norm(keras.backend.backend()), \
                    prefetched(epochs_data.batches(len(history)),
                               prefetch_depth(devices)) as batches:
                model.fit(waits.timed(batches), steps_per_epoch=epochs_data.steps(),
                          shuffle=False,  # the generator shuffles, seeded per epoch
                          epochs=last_epoch, initial_epoch=len(history),
                          validation_data=validation, validation_batch_size=EVAL_BATCH,
                          callbacks=callbacks, verbose=0)

        if config.time_budget and planned is None:
            if not history:  # the first epoch measures this machine
                fit(1)
            epochs = epochs_within(config.time_budget, history[0]["seconds"], recipe.epochs)
            record_plan(partial / "config.json", config.time_budget, history[0]["seconds"],
                        epochs)
            print(f"time budget {config.time_budget:g} min: the first epoch took "
                  f"{history[0]['seconds']:.1f} s, so {epochs} epoch(s) of at most "
                  f"{recipe.epochs}, the schedule laid out over them", flush=True)
            # A new schedule, its warm-up at most half of it so that it still decays to its
            # end, and a new train function to read it: the optimizer's state (its moments,
            # its step count) carries on.
            laid_out = replace(recipe, warmup_epochs=min(recipe.warmup_epochs, epochs / 2))
            model.optimizer.learning_rate = learning_rate(laid_out, epochs_data.steps(), epochs)
            model.make_train_function(force=True)
        if len(history) < epochs:
            fit(epochs)

    _settle_batch_norm(student, splits, len(history) * epochs_data.steps())
    return _finish(student, config, splits, history, partial)


def _settle_batch_norm(model, splits: DataSplits, steps: int) -> None:
    """Recompute the BatchNorm statistics a training of ``steps`` steps left unsettled, and
    say so (a small folder of images trains in too few steps for their moving averages)."""
    from .batch_norm_stats import recompute_statistics, unsettled_layers

    layers = unsettled_layers(model, steps)
    if layers:
        recompute_statistics(model, layers, splits.train.x, prepare=scale_pixels)
        print(f"BatchNorm statistics of {len(layers)} layers recomputed over the "
              f"{len(splits.train):,} training images: {steps} training steps are too few "
              "for their moving averages", flush=True)


def _write_run_header(partial: Path, config: TrainConfig, splits: DataSplits, model,
                      distribution: str) -> None:
    """config.json (everything needed to repeat the run) and labels.txt, before training."""
    write_json(partial / "config.json", {
        "settings": config.to_dict(),
        "versions": library_versions(),
        "devices": compute_devices(),
        "host": platform.node(),  # which machine of a cluster trained it (edgekit study)
        "distribution": distribution,
        "data_fingerprint": splits.fingerprint,
        "class_names": splits.class_names,
        "split_sizes": {"train": len(splits.train), "val": len(splits.val),
                        "test": len(splits.test)},
        "input": {"shape": [config.image_size, config.image_size, 3], "dtype": "float32",
                  "norm_mean": NORM_MEAN, "norm_std": NORM_STD,
                  "preprocess_version": PREPROCESS_VERSION},
        "parameters": int(model.count_params()),
        "command": edgekit_command_line("train", shlex.join(sys.argv)),
    })
    write_labels(partial, splits.class_names)


def _finish(model, config: TrainConfig, splits: DataSplits, history: list[dict],
            partial: Path) -> dict:
    """Write the deployable model and the evaluation, then publish the run directory."""
    from .evaluate import write_evaluation
    from .input_timing import epoch_split
    from .plots import training_curves

    _save_inference_model(model, partial / "model.keras")
    train_seconds = sum(row["seconds"] for row in history)
    epochs = len(history)
    metrics = write_evaluation(model, splits, partial, {
        "epochs_trained": epochs,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_epoch": round(train_seconds / max(1, epochs), 2),
        "train_images_per_second": round(len(splits.train) * epochs / max(train_seconds, 1e-9), 1),
        "epoch_seconds_split": epoch_split(history),
    })
    # The run's own description says where its training time went, too.
    add_to_run_config(partial / "config.json", "epoch_seconds_split",
                      metrics["epoch_seconds_split"])
    training_curves(history, partial / "training_curves.png")
    out = Path(config.out)
    with FolderLock() as replaced:
        if out.exists():
            # --overwrite was checked before training started; a conversion or benchmark of
            # the old run begun since then ends first (the checkpoint, still there, keeps the
            # run resumable through a Ctrl-C here).
            replaced.take(out, wait=True)
            shutil.rmtree(out)
        (partial / CHECKPOINT).unlink(missing_ok=True)
        partial.rename(out)
    return metrics


def _save_inference_model(model, target: Path) -> None:
    """Save an uncompiled float32 copy: no optimizer state, no custom schedule to load."""
    import keras

    # from_config builds the same layers with no compile state (clone_model keeps the
    # optimizer and its custom schedule, which a TensorFlow-only loader would then need).
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    with atomic_path(target) as tmp:
        clone.save(tmp)
