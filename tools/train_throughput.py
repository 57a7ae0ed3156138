"""Training throughput: our epoch pipeline against the reference notebook's plain ``fit``.

The reference trained with ``model.fit(x_float, y, batch_size=64)`` on arrays prepared once.
Our trainer feeds ``fit`` a generator of shuffled, augmented batches
(``train.augment.EpochData.batches``): as it is on a CPU (``edgekit_generator``), and made ahead
in a background thread as on an accelerator (``edgekit_prefetched``, ``train.prefetch``), both
with Keras' own BatchNormalization; ``edgekit_train`` is the generator with BatchNormalization on
TensorFlow's fused kernel (``train.fused_batch_norm``), as ``edgekit train`` runs, on a second
copy of the model. All are timed on the same data in one process, alternating, so the ratios
are not skewed by machine drift. Under TensorFlow, Keras already prefetches a generator (tf.data); under JAX
it does not.

    python -m tools.train_throughput --data ../shared/datasets/cifar10-jpeg --repeats 2
    KERAS_BACKEND=jax python -m tools.train_throughput ... --arch resnet8 --width 0.25
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

from edgekit.common.quiet_import import import_keras
from edgekit.train.cli import ARCH_NAMES
from edgekit.train.data import data_path

from .tool_main import check_positive_counts, run_tool


def main(argv=None) -> int:
    """Time ``--repeats`` epochs of each pipeline and print/save images per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="cifar10", help="as for edgekit train")
    parser.add_argument("--arch", default="seed_cnn", choices=ARCH_NAMES, help="architecture")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size for both")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per pipeline")
    parser.add_argument("--out", default="train_throughput.json", help="JSON result file")
    parser.add_argument("--cache-dir", type=Path, default=None, help="decoded-image cache")
    args = parser.parse_args(argv)
    check_positive_counts(args, "batch_size", "repeats")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    data_path(args.data)  # a wrong path is answered before Keras' import (seconds)
    import_keras()  # the first import, without TensorFlow's start-up notes
    import keras

    from edge_runtime.preprocess import scale_pixels
    from edgekit.common.atomic import write_json
    from edgekit.train.augment import EpochData, one_hot
    from edgekit.train.data import load_source, make_splits
    from edgekit.train.fused_batch_norm import fused_batch_norm
    from edgekit.train.image_folder import default_cache_dir
    from edgekit.train.models import build_model
    from edgekit.train.prefetch import prefetched
    from edgekit.train.splits import parse_split

    raw = load_source(args.data, 32, args.cache_dir or default_cache_dir())
    splits = make_splits(raw, parse_split("standard"), 0.1, seed=0)
    classes = len(splits.class_names)
    model, fused_model = (build_model(args.arch, (32, 32, 3), classes, args.width)
                          for _ in range(2))
    for each in (model, fused_model):
        each.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    x_plain = scale_pixels(splits.train.x)
    y_plain = one_hot(splits.train.y, classes)
    ours = EpochData(splits.train.x, splits.train.y, classes, args.batch_size, 0, 2, True)

    def plain(epoch):
        model.fit(x_plain, y_plain, batch_size=args.batch_size, epochs=1, verbose=0)

    def generator(epoch):
        model.fit(ours.batches(epoch), steps_per_epoch=ours.steps(), epochs=1, shuffle=False,
                  verbose=0)

    def thread_ahead(epoch):
        with prefetched(ours.batches(epoch)) as batches:
            model.fit(batches, steps_per_epoch=ours.steps(), epochs=1, shuffle=False, verbose=0)

    def edgekit_train(epoch):
        with fused_batch_norm(keras.backend.backend()):
            fused_model.fit(ours.batches(epoch), steps_per_epoch=ours.steps(), epochs=1,
                            shuffle=False, verbose=0)

    plain(0)  # warm-up: graph tracing happens once, outside the timings
    generator(0)  # a generator's first fit traces its own graph under TensorFlow
    edgekit_train(0)
    runs = (("plain_fit", plain), ("edgekit_generator", generator),
            ("edgekit_prefetched", thread_ahead), ("edgekit_train", edgekit_train))
    seconds = {name: [] for name, _ in runs}
    for repeat in range(args.repeats):
        for name, run in runs:
            started = time.perf_counter()
            run(repeat)
            seconds[name].append(time.perf_counter() - started)
    images = len(splits.train)
    result = {
        "command": "python -m tools.train_throughput " + shlex.join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "backend": keras.backend.backend(), "arch": args.arch, "width": args.width,
        "batch_size": args.batch_size,
        "images_per_epoch": images,
        "seconds": {k: [round(s, 2) for s in v] for k, v in seconds.items()},
        "images_per_second": {k: round(images / statistics.median(v), 1) for k, v in seconds.items()},
    }
    median = {name: statistics.median(times) for name, times in seconds.items()}
    result["generator_over_plain_time"] = round(
        median["edgekit_generator"] / median["plain_fit"], 3)
    result["prefetched_over_generator_time"] = round(
        median["edgekit_prefetched"] / median["edgekit_generator"], 3)
    result["edgekit_train_over_plain_time"] = round(
        median["edgekit_train"] / median["plain_fit"], 3)
    write_json(Path(args.out), result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
