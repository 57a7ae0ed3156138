"""Where an epoch's time goes: waiting for the next batch (our input pipeline), the model's
training steps, and the validation pass.

The wait is timed around the batch iterator that ``fit`` pulls from, on the thread that pulls:
on a CPU, where nothing makes batches ahead, that is all the time spent making them; with
batches made ahead (train/prefetch.py) only what the step still waits. A slow machine then
shows which one to blame: a large input share means the augmentation, not the model, is the
bottleneck.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator


class BatchWaits:
    """Seconds spent waiting for batches since the last ``take``."""

    def __init__(self):
        self._seconds = 0.0
        self._lock = threading.Lock()  # fit may pull batches on a thread of its own

    def timed(self, batches: Iterator) -> Iterator:
        """``batches``, each ``next`` timed."""
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            with self._lock:
                self._seconds += time.perf_counter() - started
            yield batch

    def take(self) -> float:
        """The seconds waited since the last call, and start counting again."""
        with self._lock:
            seconds, self._seconds = self._seconds, 0.0
        return seconds


def epoch_split(history: list[dict]) -> dict[str, float] | None:
    """Mean seconds per epoch of waiting for batches, training steps and validation, over the
    epochs that recorded them (a run resumed from an older edgekit has some that did not);
    None when none did."""
    timed = [row for row in history if row.get("input_seconds") is not None
             and row.get("validation_seconds") is not None]
    if not timed:
        return None
    count = len(timed)
    input_seconds = sum(row["input_seconds"] for row in timed) / count
    validation = sum(row["validation_seconds"] for row in timed) / count
    total = sum(row["seconds"] for row in timed) / count
    return {"input": round(input_seconds, 3),
            "step": round(max(0.0, total - input_seconds - validation), 3),
            "validation": round(validation, 3)}
