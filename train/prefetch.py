"""Training batches made ahead, in a background thread, while the model trains on the current one.

Making a batch (numpy, which releases the GIL while it copies) takes a few milliseconds, about
what a small model's whole training step takes on a GPU; made one after the other, the GPU waits
for every batch. The batches and their order are the wrapped iterator's own: they are only made
earlier, so a resumed run still sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from typing import Iterator

# How often a blocked producer looks whether training has ended.
_POLL_SECONDS = 0.1
# Batches made ahead when an accelerator trains: enough to ride out a slow batch.
ACCELERATOR_DEPTH = 4


def prefetch_depth(devices: list[str]) -> int:
    """How far ahead to make batches for a run on ``devices`` (as ``compute_devices`` names
    them): ``ACCELERATOR_DEPTH`` when any is not a CPU, else 0 (no thread). On a CPU the
    producer competes for the cores the training step uses, and it bought nothing there
    (epoch-time ratios 1.036 and 1.002 under JAX on the 2-core CPU; docs/results.md, "Training
    throughput"); Keras skips its own look-ahead on CPUs too."""
    return ACCELERATOR_DEPTH if any(not d.startswith("cpu") for d in devices) else 0


class _End:
    """Put in the queue when the source is exhausted."""


class _Failure:
    """Put in the queue when the source raised: the consumer raises the same error."""

    def __init__(self, error: BaseException):
        self.error = error


@contextmanager
def prefetched(source: Iterator, depth: int = ACCELERATOR_DEPTH) -> Iterator[Iterator]:
    """Yield a generator over ``source``'s items, made up to ``depth`` ahead in a daemon thread;
    leaving the ``with`` block stops the thread (``EpochData.batches`` never ends by itself).
    Depth 0 yields ``source`` itself, with no thread."""
    if depth < 0:
        raise ValueError(f"depth must be 0 or more, not {depth}")
    if depth == 0:
        yield source
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failure(error))
            return
        put(_End())

    def consume() -> Iterator:
        while True:
            item = ready.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    producer = threading.Thread(target=produce, name="edgekit-prefetch", daemon=True)
    producer.start()
    try:
        yield consume()
    finally:
        stop.set()
        producer.join()
