"""One benchmark subject in its own process: a model file through one runtime (or the Keras
model through ``model(x)`` or ``model.predict``) at a fixed thread count.

The parent starts it, reads one JSON line (import and cold-start times, or an error), then
sends commands, one JSON line each, and reads one JSON line back:

    {"cmd": "latency", "seconds": 0.3, "max_runs": 2000}  -> {"ms": [...]}   batch-1 timings
    {"cmd": "throughput", "batch": 256, "seconds": 0.5}   -> {"images_per_s": x} or {"skip": why}
    {"cmd": "exit"}                                       -> {"peak_rss_mb": x}

It also answers ``predict BACKEND MODEL PIXELS.npy TTA`` once, for accuracy through a runtime
installed only in another Python environment (tflite-runtime needs numpy < 2).

so several subjects can be timed in interleaved rounds while each keeps its own memory
footprint: the peak resident memory reported is that of a process that only loaded and ran
this one subject.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np


def _rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        return 0.0


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB. VmHWM, because Linux carries
    ru_maxrss over an exec: a child of a 1.3 GB parent would report 1.3 GB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RuntimeSubject:
    """A .tflite/.onnx file through edge_runtime.Classifier, as a device would run it."""

    def __init__(self, path: str, backend: str, threads: int, tta: str = "none"):
        started = time.perf_counter()
        from edge_runtime.classifier import Classifier

        self.import_ms = 1000 * (time.perf_counter() - started)
        self.rss_before_load_mb = _rss_mb()
        started = time.perf_counter()
        self.classifier = Classifier(path, threads=threads, backend=backend, tta=tta)
        size = self.classifier.image_size
        self.pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3),
                                                        dtype=np.uint8)
        self.run_one()
        self.cold_start_ms = 1000 * (time.perf_counter() - started)
        self.backend = self.classifier.backend
        self.xnnpack = self._delegated()

    def _delegated(self):
        """What XNNPACK took of a TFLite file on this machine's runtime (None for ONNX): why
        a quantized file is or is not faster."""
        from edge_runtime.probe import delegation

        interpreter = getattr(self.classifier.model, "interpreter", None)
        try:
            return delegation(interpreter) if interpreter is not None else None
        except (AttributeError, KeyError, ValueError):
            return None

    def run_one(self):
        """One batch-1 inference on preprocessed pixels (the camera's and classify's path)."""
        return self.classifier.probabilities(self.pixels)

    def run_batch(self, batch: int):
        """One inference on ``batch`` images, or a reason why the file cannot take it."""
        pixels = np.repeat(self.pixels, batch, axis=0)
        return lambda: self.classifier.probabilities(pixels)


class KerasSubject:
    """RUN_DIR/model.keras through ``model(x)`` in a compiled tf.function, or ``predict``."""

    def __init__(self, path: str, mode: str, threads: int):
        started = time.perf_counter()
        import tensorflow as tf

        # Thread pools must be sized before TensorFlow runs its first op.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras

        from edge_runtime.preprocess import scale_pixels

        self.import_ms = 1000 * (time.perf_counter() - started)
        self.rss_before_load_mb = _rss_mb()
        started = time.perf_counter()
        model = keras.saving.load_model(path, compile=False)
        size = int(model.input_shape[1])
        pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        self.image = scale_pixels(pixels)
        self.mode = mode
        if mode == "call":
            compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            self.infer = lambda x: compiled(x).numpy()
        else:
            self.infer = lambda x: model.predict(x, verbose=0)
        self.run_one()
        self.cold_start_ms = 1000 * (time.perf_counter() - started)
        self.backend = f"keras-{mode}"

    def run_one(self):
        """One batch-1 inference."""
        return self.infer(self.image)

    def run_batch(self, batch: int):
        """One inference on ``batch`` images."""
        images = np.repeat(self.image, batch, axis=0)
        return lambda: self.infer(images)


def _latency(subject, seconds: float, max_runs: int, min_runs: int = 5) -> list[float]:
    subject.run_one()  # untimed: the first call after a batch resize reallocates tensors
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        started = time.perf_counter()
        subject.run_one()
        times.append(1000 * (time.perf_counter() - started))
    return times


def _throughput(subject, batch: int, seconds: float) -> dict:
    try:
        run = subject.run_batch(batch)
        run()  # warm-up (and, for a fixed-batch file, the resize attempt)
    except Exception as exc:  # noqa: BLE001 - a format that cannot batch is a result, not a crash
        return {"skip": f"batch {batch} not supported: {str(exc).splitlines()[0]}"}
    images = 0
    started = time.perf_counter()
    while images == 0 or time.perf_counter() - started < seconds:
        run()
        images += batch
    return {"images_per_s": images / (time.perf_counter() - started)}


def top1_classes(model, backend: str, pixels: np.ndarray, tta: str = "none") -> np.ndarray:
    """Top-1 class of every uint8 image through ``backend`` with test-time augmentation
    ``tta``, 500 images per call."""
    from edge_runtime.classifier import Classifier

    classifier = Classifier(model, backend=backend, tta=tta)
    return np.concatenate([classifier.probabilities(pixels[i:i + 500]).argmax(1)
                           for i in range(0, len(pixels), 500)])


def predict_file(backend: str, model: str, pixels_file: str, tta: str) -> int:
    """``predict BACKEND MODEL PIXELS.npy TTA``: print the top-1 class of every image as a JSON
    list (accuracy for a runtime that lives in another Python environment)."""
    from edge_runtime.errors import UserError

    try:
        top = top1_classes(model, backend, np.load(pixels_file), tta)
    except UserError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({"top1": top.tolist()}))
    return 0


def main() -> int:
    """Serve one subject: ``python bench_worker.py KIND TARGET THREADS TTA``."""
    if sys.argv[1] == "predict":
        return predict_file(*sys.argv[2:6])
    kind, target, threads, tta = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    reply = sys.stdout
    sys.stdout = sys.stderr  # libraries' chatter must not corrupt the JSON channel
    try:
        if kind.startswith("keras-"):
            subject = KerasSubject(target, kind.removeprefix("keras-"), threads)
        else:
            subject = RuntimeSubject(target, kind, threads, tta)
    except Exception as exc:  # noqa: BLE001 - reported as this subject's error row
        reply.write(json.dumps({"error": str(exc).splitlines()[0] if str(exc) else
                                type(exc).__name__}) + "\n")
        reply.flush()
        return 1
    reply.write(json.dumps({"backend": subject.backend, "import_ms": subject.import_ms,
                            "cold_start_ms": subject.cold_start_ms,
                            "rss_before_load_mb": subject.rss_before_load_mb,
                            "xnnpack": getattr(subject, "xnnpack", None)}) + "\n")
    reply.flush()
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "latency":
            answer = {"ms": _latency(subject, command["seconds"], command["max_runs"])}
        elif command["cmd"] == "throughput":
            answer = _throughput(subject, command["batch"], command["seconds"])
        else:
            reply.write(json.dumps({"peak_rss_mb": _peak_rss_mb()}) + "\n")
            reply.flush()
            return 0
        reply.write(json.dumps(answer) + "\n")
        reply.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
