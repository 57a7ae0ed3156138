"""Batches made ahead in a thread: same items in the same order, errors passed on, thread stopped."""
import itertools
import threading

import numpy as np
import pytest

from edgekit.train.augment import EpochData
from edgekit.train.prefetch import prefetch_depth, prefetched


def _prefetch_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "edgekit-prefetch"]


def test_prefetched_batches_equal_the_generator_s_own_and_the_thread_stops():
    x = np.random.default_rng(0).integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    data = EpochData(x, np.arange(30) % 3, 3, 8, seed=2, crop_pad=2, flip=True, cutout=3)
    expected = list(itertools.islice(data.batches(1), 9))  # more than an epoch: 4 steps each
    with prefetched(data.batches(1), depth=2) as batches:
        got = list(itertools.islice(batches, 9))
        assert len(_prefetch_threads()) == 1
    assert not _prefetch_threads()  # the endless source's producer ended with the block
    for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
        assert np.array_equal(gx, ex) and np.array_equal(gy, ey)


def test_a_finite_source_ends_and_an_error_in_it_reaches_the_consumer():
    with prefetched(iter(range(5))) as items:
        assert list(items) == [0, 1, 2, 3, 4]

    def failing():
        yield 1
        raise OSError("disk gone")

    with prefetched(failing()) as items:
        assert next(items) == 1
        with pytest.raises(OSError, match="disk gone"):
            next(items)
    with pytest.raises(ValueError, match="depth must be 0 or more"):
        with prefetched(iter(()), depth=-1):
            pass
    assert not _prefetch_threads()


def test_no_thread_on_a_cpu():
    assert prefetch_depth(["cpu:0"]) == 0
    assert prefetch_depth(["gpu:0"]) == prefetch_depth(["cpu:0", "gpu:0"]) > 0
    source = iter(range(3))
    with prefetched(source, depth=0) as items:
        assert items is source and not _prefetch_threads()
