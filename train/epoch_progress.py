"""A per-epoch progress bar that knows the run's real epoch count.

The trainer calls ``fit`` once per epoch (so checkpoints and augmentation follow the epoch
number), which makes Keras' own bar say "Epoch 1/1"; this callback shows "epoch 7/60" with
running loss and accuracy instead, and prints one summary line per epoch off a terminal.
"""
from __future__ import annotations

import sys
import time

import keras
from tqdm import tqdm


class EpochProgress(keras.callbacks.Callback):
    """tqdm bar over the batches of one epoch, then a line with the validation figures."""

    def __init__(self, epoch: int, epochs: int, steps: int):
        super().__init__()
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.bar = tqdm(total=self.steps, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                        file=sys.stderr, unit="batch", leave=False,
                        disable=not sys.stderr.isatty())

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(loss=f"{logs.get('loss', 0):.4f}",
                             acc=f"{logs.get('accuracy', 0):.4f}", refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        elapsed = time.perf_counter() - self.started
        self.bar.close()
        print(f"epoch {self.epoch + 1}/{self.epochs} - {elapsed:.0f}s - "
              f"loss {logs.get('loss', float('nan')):.4f} - "
              f"accuracy {logs.get('accuracy', float('nan')):.4f} - "
              f"val_loss {logs.get('val_loss', float('nan')):.4f} - "
              f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f}", flush=True)
