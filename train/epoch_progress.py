"""A per-epoch progress bar with running loss and accuracy, and one summary line per epoch.

Keras' own bar cannot show a generator's step count before the first epoch ends and floods
logs off a terminal; this one is a tqdm bar on a terminal and a single line per epoch elsewhere.
``EpochBars`` holds the callback methods without a Keras base class, so that the
quantization-aware fine-tuning, which runs under tf_keras (Keras 2), shows the same bars.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Optional, TextIO

import keras
from tqdm import tqdm


class EpochBars:
    """tqdm bar over the batches of one epoch, then a line with the validation figures.

    ``label`` starts both (the conversion names its variant there); the bar goes to
    ``stream`` (default stderr) and only on a terminal, the line to ``stream`` or stdout.
    Mix in before a Keras (or tf_keras) Callback class."""

    def __init__(self, epochs: int, steps: int, label: str = "",
                 stream: Optional[TextIO] = None):
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.label, self.stream = label, stream
        self.bar = None
        self.started = 0.0
        self._bar_lock = threading.Lock()  # batch hooks may run concurrently (async_safe)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        bar_stream = self.stream or sys.stderr
        self.bar = tqdm(total=self.steps, desc=f"{self.label}epoch {epoch + 1}/{self.epochs}",
                        file=bar_stream, unit="batch", leave=False,
                        disable=not bar_stream.isatty())

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        with self._bar_lock:
            if not self.bar.disable:
                self.bar.set_postfix(loss=f"{logs.get('loss', 0):.4f}",
                                     acc=f"{logs.get('accuracy', 0):.4f}", refresh=False)
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        elapsed = time.perf_counter() - self.started
        self.bar.close()
        print(f"{self.label}epoch {epoch + 1}/{self.epochs} - {elapsed:.0f}s - "
              f"loss {logs.get('loss', float('nan')):.4f} - "
              f"accuracy {logs.get('accuracy', float('nan')):.4f} - "
              f"val_loss {logs.get('val_loss', float('nan')):.4f} - "
              f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f}",
              file=self.stream or sys.stdout, flush=True)


class EpochProgress(EpochBars, keras.callbacks.Callback):
    """EpochBars as a Keras 3 callback (training)."""

    # Keras then runs the batch hook in worker threads (waiting for them before on_epoch_end):
    # reading a step's loss waits for the device to finish that step, and in the training loop
    # itself that wait would keep the next step from being dispatched while this one runs.
    async_safe = True
