"""The training loop's per-epoch callbacks: progress (EpochProgress) and the training state
(EpochCheckpoint).

Per-epoch training state: every model variable (weights, BatchNorm statistics, Dropout's
seed-generator state) and every optimizer variable (step, moments), as one .npz file.

A ``.keras`` file is not enough to resume: ``load_model`` gives Dropout a fresh random seed and
drops the optimizer's weight-decay exclusions, so a resumed run would drift from an
uninterrupted one. Rebuilding the model from the run's config and restoring these arrays gives
the same next epoch.
"""
from __future__ import annotations

import csv
import io
import signal
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import keras
import numpy as np

from edge_runtime.errors import UserError, first_line
from edgekit.common.atomic import atomic_path, write_text
from edgekit.common.progress import EpochBars

from .input_timing import BatchWaits

CHECKPOINT = "checkpoint.npz"
EPOCHS_DONE = "epochs_done"
HISTORY_FIELDS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                  "seconds", "input_seconds", "validation_seconds"]
# Columns an older history.csv lacks: a resumed run writes them empty for its older rows.
TIMING_FIELDS = ("input_seconds", "validation_seconds")


def _model_state(model: keras.Model) -> list:
    """The model variables a checkpoint holds: all of them, except that a distillation run's
    frozen teacher is left out (it is reloaded from its own run directory, and would otherwise
    make every checkpoint as large as the teacher)."""
    return getattr(model, "resumable_variables", model.variables)


def _damaged(path: Path, exc: Exception) -> UserError:
    return UserError(f"{path}: damaged ({first_line(exc)}); start again with --overwrite")


def save_state(model: keras.Model, target: Path, epochs_done: int) -> None:
    """Write the model's and its optimizer's variables, and how many epochs made them, to
    ``target`` (.npz) atomically."""
    arrays = {f"model_{i:04d}": keras.ops.convert_to_numpy(v)
              for i, v in enumerate(_model_state(model))}
    arrays.update({f"optimizer_{i:04d}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.optimizer.variables)})
    arrays[EPOCHS_DONE] = np.array(epochs_done)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def restore_state(model: keras.Model, source: Path) -> Optional[int]:
    """Load ``source`` into a freshly built and compiled ``model`` of the same run; return the
    epochs it holds (None from an older checkpoint that does not say)."""
    model.optimizer.build(model.trainable_variables)
    try:
        with np.load(source) as saved:
            for prefix, variables in (("model", _model_state(model)),
                                      ("optimizer", model.optimizer.variables)):
                names = sorted(k for k in saved.files if k.startswith(prefix + "_"))
                if len(names) != len(variables):
                    raise UserError(f"{source} does not match this run's model; start again "
                                    "with --overwrite")
                for name, variable in zip(names, variables):
                    variable.assign(saved[name])
            return int(saved[EPOCHS_DONE]) if EPOCHS_DONE in saved.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _damaged(source, exc) from None


def history_of_checkpoint(history: list[dict], epochs_done: Optional[int],
                          path: Path) -> list[dict]:
    """The rows of ``history`` (read from ``path``) that the checkpoint's state has trained:
    an interruption between writing history.csv and the checkpoint leaves one row more,
    which is dropped so that the epoch is trained again from the same state."""
    if epochs_done is None:
        return history
    if len(history) < epochs_done:
        raise _damaged(path, ValueError(f"{len(history)} epochs listed, the checkpoint holds "
                                        f"{epochs_done}"))
    return history[:epochs_done]


def read_history(path: Path) -> list[dict]:
    """Rows of history.csv as dicts of floats (``epoch`` as int)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()
                 if not (k in TIMING_FIELDS and v == "")} for row in rows]
    except (ValueError, TypeError) as exc:  # TypeError: a short row's missing values
        raise _damaged(path, exc) from None


def write_history(path: Path, history: list[dict]) -> None:
    """history.csv, one row per completed epoch (atomic)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back until the block ends, then deliver them: an
    epoch's files are written whole, and no library is interrupted half-way through a write.
    Signals reach only the main thread, so elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda number, frame: caught.append(number))
                for number in held}
    try:
        yield
    finally:
        for number in held:
            signal.signal(number, previous[number])
        for number in dict.fromkeys(caught):
            signal.raise_signal(number)  # as the restored handler takes it


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: append its row to ``history``, then save history.csv and the state.

    The state is saved only at an epoch's end, so an interruption anywhere inside an epoch
    resumes from the last completed one.
    """

    def __init__(self, run_dir: Path, history: list[dict], waits: BatchWaits):
        super().__init__()
        self.run_dir, self.history, self.waits = run_dir, history, waits
        self.started = self.validation_started = self.validation_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.validation_seconds = 0.0
        self.waits.take()  # what fit pulled before the epoch began is not this epoch's

    def on_test_begin(self, logs=None):
        self.validation_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validation_seconds += time.perf_counter() - self.validation_started

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # The optimizer's learning_rate property evaluates its schedule at the current step.
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history.append({
            "epoch": epoch + 1, "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
            "val_loss": float(logs["val_loss"]), "val_accuracy": float(logs["val_accuracy"]),
            "learning_rate": rate, "seconds": round(time.perf_counter() - self.started, 3),
            "input_seconds": round(self.waits.take(), 3),
            "validation_seconds": round(self.validation_seconds, 3)})
        # History first: a kill between the two (Ctrl-C waits for both) leaves it a row ahead
        # of the checkpoint, and resuming drops that row (history_of_checkpoint).
        with ctrl_c_deferred():
            write_history(self.run_dir / "history.csv", self.history)
            save_state(self.model, self.run_dir / CHECKPOINT, len(self.history))


class EpochProgress(EpochBars, keras.callbacks.Callback):
    """EpochBars as a Keras 3 callback (training)."""

    # Keras then runs the batch hook in worker threads (waiting for them before on_epoch_end):
    # reading a step's loss waits for the device to finish that step, and in the training loop
    # itself that wait would keep the next step from being dispatched while this one runs.
    async_safe = True
