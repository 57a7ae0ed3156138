"""Progress on a terminal that stays quiet in logs: a tqdm bar for long loops (a line every
30 s off a terminal), and per-epoch bars with running loss and accuracy for training.

Keras' own bar cannot show a generator's step count before the first epoch ends and floods
logs off a terminal; ``EpochBars`` is a tqdm bar on a terminal and a single line per epoch
elsewhere. It holds the callback methods without a Keras base class, so that training (Keras 3,
train.checkpoint.EpochProgress) and the quantization-aware fine-tuning (tf_keras, Keras 2) show
the same bars. edge_runtime has its own tqdm-free counter (edge_runtime.progress_line): the
device install has no tqdm.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Optional, TextIO

from tqdm import tqdm


def progress_bar(total: Optional[int], description: str, unit: str) -> tqdm:
    """A tqdm bar on stderr to ``update`` by hand; off a terminal it refreshes every 30 s."""
    # tqdm's default (10 refreshes a second) floods a log file or a study's cell logs with
    # carriage-returned lines; on a terminal the bar stays once done, in a log it does not.
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr,
                mininterval=0.2 if interactive else 30.0, leave=interactive)


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
