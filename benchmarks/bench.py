"""``edgekit bench RUN_DIR``: accuracy, latency, throughput, cold start, memory and size of every
variant in the manifest and of the Keras model, measured in one run on this machine.

Accuracy runs in this process on the run's test split. Speed and memory are measured in one
child process per subject (a file through one runtime at one thread count, or the Keras model
through ``model(x)`` or ``model.predict``), started one after another so cold starts do not
overlap, then timed in interleaved rounds (order reversed every other round) so machine drift
falls on every subject alike; speedups are ratios against Keras within each round.
"""
from __future__ import annotations

import gzip
import hashlib
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edge_runtime.errors import UserError
from edge_runtime.manifest import file_sha256, read_manifest, variant_file

from .settings import BenchSettings
from .workers import Worker, WorkerError, predict_elsewhere

KERAS_MODES = ("keras-call", "keras-predict")
BACKENDS_BY_FORMAT = {"tflite": ("ai-edge-litert", "tflite-runtime"), "onnx": ("onnxruntime",)}
_MODULES = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime",
            "onnxruntime": "onnxruntime"}


@dataclass
class Subject:
    """One row of the report: what runs, how, and what was measured."""

    variant: str
    runtime: str
    threads: int
    path: Path
    format: str
    precision: str
    tta: str = "none"
    error: Optional[str] = None
    worker: Optional[Worker] = None
    measured: dict = field(default_factory=dict)
    round_medians: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    throughputs: list = field(default_factory=list)


def installed_backends() -> set[str]:
    """Runtimes importable here (checked without importing them)."""
    from importlib.util import find_spec

    return {name for name, module in _MODULES.items() if find_spec(module) is not None}


def tta_variant(variant: str, tta: str) -> str:
    """A report row's variant name: the manifest's, marked with its test-time augmentation."""
    return variant if tta == "none" else f"{variant}+{tta}"


def plain_variant(variant: str, tta: str) -> str:
    """The manifest's variant behind a report row's name: what ``tta_variant`` added, removed."""
    return variant if tta == "none" else variant.removesuffix(f"+{tta}")


def plan_subjects(folder: Path, manifest: Optional[dict], threads: tuple,
                  backends: set[str], tta_modes: tuple = ("none",),
                  keras_model: Optional[Path] = None) -> list[Subject]:
    """Keras in both modes (when ``keras_model`` is given), then every manifest entry (its file
    in ``folder``) through every available runtime of its format with every test-time
    augmentation mode, each at every thread count; entries that cannot run become error rows."""
    subjects = []
    for count in threads:
        if keras_model is not None:
            for mode in KERAS_MODES:
                subjects.append(Subject("keras", mode, count, keras_model, "keras", "float32"))
        for entry in (manifest or {}).get("variants", []):
            try:
                path, outside = variant_file(folder, entry), None
            except UserError as exc:
                path, outside = folder / "(refused)", str(exc)
            runtimes = [b for b in BACKENDS_BY_FORMAT.get(entry.get("format"), ())
                        if b in backends] or ["-"]
            for runtime in runtimes:
                for tta in tta_modes:
                    subject = Subject(tta_variant(entry["name"], tta), runtime, count, path,
                                      entry.get("format", "?"), entry.get("precision", "?"), tta)
                    if outside:
                        subject.error = outside
                    elif "error" in entry:
                        subject.error = f"conversion failed: {entry['error']}"
                    elif not path.is_file():
                        subject.error = f"{path.name} is missing from {folder.name}/"
                    elif runtime == "-":
                        subject.error = f"no runtime for {entry.get('format')} installed"
                    subjects.append(subject)
    return subjects


def file_predictions(subjects: list[Subject], x: np.ndarray, settings: BenchSettings,
                     progress) -> dict:
    """Top-1 classes of the uint8 images ``x`` through each runnable (file, runtime, test-time
    augmentation), keyed by (variant, runtime); a string where the file failed."""
    from .bench_worker import top1_classes

    predictions: dict = {}
    for subject in subjects:
        key = (subject.variant, subject.runtime)
        if subject.error or key in predictions or subject.format == "keras":
            continue
        elsewhere = dict(settings.runtime_pythons).get(subject.runtime)
        try:
            if elsewhere:
                predictions[key] = np.asarray(predict_elsewhere(elsewhere, subject.runtime,
                                                                subject.path, x, subject.tta))
            else:
                predictions[key] = top1_classes(subject.path, subject.runtime, x, subject.tta)
        except (UserError, WorkerError) as exc:
            predictions[key] = str(exc)
        progress.update(1)
    return predictions


def classes_in_turn(y: np.ndarray, limit: Optional[int]) -> np.ndarray:
    """Indices (in order) of ``limit`` of the labels ``y``, taken from the classes in turn:
    the first image of each class, then the second of each, ...; all of them without a limit.
    A test folder is read class by class, so its first N images would be one class's."""
    if limit is None or limit >= len(y):
        return np.arange(len(y))
    turn = np.zeros(len(y), np.int64)  # how many of its class come before each image
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        turn[members] = np.arange(len(members))
    return np.sort(np.lexsort((y, turn))[:limit])


def score(subjects: list[Subject], predictions: dict, y: np.ndarray, classes: int,
          reference: Optional[np.ndarray] = None) -> None:
    """Fill each subject's accuracy and per-class accuracy over ``classes`` classes from its
    ``predictions`` against the labels ``y``; with the Keras model's top-1 classes
    ``reference``, also its difference from Keras and its agreement with it."""
    for subject in subjects:
        predicted = predictions.get((subject.variant, subject.runtime))
        if isinstance(predicted, str):
            subject.error = predicted
        if subject.error or predicted is None:
            continue
        accuracy = float(np.mean(predicted == y))
        subject.measured.update(
            accuracy=accuracy,
            per_class=[float(np.mean(predicted[y == c] == c)) if np.any(y == c) else None
                       for c in range(classes)])
        if reference is not None:
            subject.measured.update(
                delta_points=100 * (accuracy - float(np.mean(reference == y))),
                agreement=float(np.mean(predicted == reference)))


def _accuracy_pass(run_dir: Path, test, classes: int, subjects: list[Subject],
                   settings: BenchSettings, progress) -> dict:
    """Predictions of Keras and of each (file, runtime) on the ``test`` split of ``classes``
    classes; fills accuracy fields."""
    from edge_runtime.preprocess import scale_pixels
    from edgekit.train.finished_run import load_keras_model

    chosen = classes_in_turn(test.y, settings.test_limit)
    x, y = test.x[chosen], test.y[chosen]
    model = load_keras_model(run_dir / "model.keras")
    reference = np.asarray(model.predict(scale_pixels(x), batch_size=500, verbose=0)).argmax(1)
    predictions = {("keras", mode): reference for mode in KERAS_MODES}
    progress.update(1)
    predictions.update(file_predictions(subjects, x, settings, progress))
    score(subjects, predictions, y, classes, reference)
    return {"test_images": int(len(y)), "keras_accuracy": float(np.mean(reference == y))}


def measure(subjects: list[Subject], settings: BenchSettings, progress,
            references: dict) -> None:
    """Start every runnable subject's process, time them all in interleaved rounds, stop
    them, and compute speedups against the ``references`` (see ``_speedups``)."""
    _start_workers(subjects, settings, progress)
    try:
        _timed_rounds(subjects, settings, progress)
    finally:
        _stop_workers(subjects)
    _speedups(subjects, references)


def measuring_steps(subjects: list[Subject], settings: BenchSettings) -> int:
    """Progress steps of ``measure``: one per subject started, one per round of each."""
    return len(subjects) + settings.rounds * sum(not s.error for s in subjects)


def _start_workers(subjects: list[Subject], settings: BenchSettings, progress) -> None:
    pythons = dict(settings.runtime_pythons)
    for subject in subjects:
        if not subject.error:
            try:
                subject.worker = Worker(subject.runtime, subject.path, subject.threads,
                                        pythons.get(subject.runtime, sys.executable),
                                        tta=subject.tta)
                subject.measured.update({k: subject.worker.hello[k] for k in
                                         ("cold_start_ms", "import_ms", "rss_before_load_mb")})
                if subject.worker.hello.get("xnnpack"):
                    subject.measured["xnnpack"] = subject.worker.hello["xnnpack"]
            except WorkerError as exc:
                subject.error = f"failed to load: {exc}"
        progress.update(1)


def _timed_rounds(subjects: list[Subject], settings: BenchSettings, progress) -> None:
    live = [s for s in subjects if s.worker]
    for round_index in range(settings.rounds):
        for subject in live if round_index % 2 == 0 else list(reversed(live)):
            if subject.worker is None:
                continue  # died in an earlier round
            try:
                times = subject.worker.ask({"cmd": "latency", "seconds": settings.latency_seconds,
                                            "max_runs": settings.max_runs})["ms"]
                subject.samples.extend(times)
                subject.round_medians.append(statistics.median(times))
                answer = subject.worker.ask({"cmd": "throughput",
                                             "batch": settings.throughput_batch,
                                             "seconds": settings.throughput_seconds})
                if "images_per_s" in answer:
                    subject.throughputs.append(answer["images_per_s"])
                else:
                    subject.measured["throughput_note"] = answer["skip"]
            except WorkerError as exc:
                subject.error = f"stopped during measurement: {exc}"
                subject.worker.close()
                subject.worker = None
            progress.update(1)


def _stop_workers(subjects: list[Subject]) -> None:
    for subject in subjects:
        if subject.worker:
            try:
                subject.measured["peak_rss_mb"] = subject.worker.ask({"cmd": "exit"},
                                                                     timeout=60)["peak_rss_mb"]
            except WorkerError as exc:
                subject.error = f"failed at exit: {exc}"
            subject.worker.close()
            subject.worker = None


def _latency_figures(subject: Subject) -> dict:
    samples = np.asarray(subject.samples)
    return {"latency_median_ms": float(np.median(samples)),
            "latency_p25_ms": float(np.percentile(samples, 25)),
            "latency_p75_ms": float(np.percentile(samples, 75)),
            "latency_p90_ms": float(np.percentile(samples, 90)),
            "latency_p99_ms": float(np.percentile(samples, 99)),
            "latency_mean_ms": float(samples.mean()), "latency_std_ms": float(samples.std()),
            "latency_samples": int(len(samples)),
            "latency_round_min_ms": min(subject.round_medians),
            "latency_round_max_ms": max(subject.round_medians)}


def keras_reference(mode: str) -> Callable[[Subject, Subject], bool]:
    """Whether a subject is the Keras ``mode`` (keras-call, keras-predict) that a converted file
    is compared with."""
    return lambda candidate, subject: candidate.runtime == mode and subject.variant != "keras"


KERAS_REFERENCES = {mode.replace("-", "_"): keras_reference(mode) for mode in KERAS_MODES}


def _speedups(subjects: list[Subject], references: dict) -> None:
    """Per-round ratios against each reference at the same thread count: median, min and max,
    as ``speedup_vs_NAME``. ``references`` maps NAME to whether a candidate subject is the
    reference of a subject."""
    for subject in subjects:
        if not subject.round_medians:
            continue
        for name, is_reference in references.items():
            reference = next((s for s in subjects if s is not subject and s.round_medians and
                              s.threads == subject.threads and is_reference(s, subject)), None)
            if reference is None or len(reference.round_medians) != len(subject.round_medians):
                continue
            ratios = [r / v for r, v in zip(reference.round_medians, subject.round_medians)]
            subject.measured[f"speedup_vs_{name}"] = statistics.median(ratios)
            subject.measured[f"speedup_vs_{name}_min"] = min(ratios)
            subject.measured[f"speedup_vs_{name}_max"] = max(ratios)


def rows(subjects: list[Subject], settings: BenchSettings) -> list[dict]:
    """One flat record per subject, errors included."""
    records = []
    sizes: dict[Path, tuple[int, int, str]] = {}
    for subject in subjects:
        if subject.path.is_file() and subject.path not in sizes:
            data = subject.path.read_bytes()
            # The sha256 lets reports made on two machines be matched file by file.
            sizes[subject.path] = (len(data), len(gzip.compress(data, compresslevel=9)),
                                   hashlib.sha256(data).hexdigest())
        size, gzip_size, sha256 = sizes.get(subject.path, (None, None, None))
        record = {"variant": subject.variant, "format": subject.format,
                  "precision": subject.precision, "runtime": subject.runtime,
                  "tta": subject.tta, "threads": subject.threads, "file": subject.path.name,
                  "bytes": size, "gzip_bytes": gzip_size, "sha256": sha256,
                  "error": subject.error}
        if not subject.error:
            record.update(subject.measured)
            if subject.samples:
                record.update(_latency_figures(subject))
            if subject.throughputs:
                record["throughput_batch"] = settings.throughput_batch
                record["throughput_images_per_s"] = statistics.median(subject.throughputs)
        records.append(record)
    return records


def run_bench(run_dir: Path, settings: BenchSettings, command: str) -> tuple[dict, bool]:
    """Measure everything, write RUN_DIR/report/, return (report, any subject failed)."""
    from edgekit.common.progress import progress_bar
    from edgekit.train.finished_run import check_finished_run, read_run_config
    from edgekit.train.labels import read_labels
    from edgekit.train.data import run_splits

    from .device_state import watched
    from .environment import device_check_verdicts, environment
    from .report import write_report

    run_dir = check_finished_run(run_dir)
    manifest_path = run_dir / "artifacts" / "manifest.json"
    manifest = read_manifest(manifest_path) if manifest_path.is_file() else None
    source_sha256 = (manifest or {}).get("source_model", {}).get("sha256")
    if source_sha256 and source_sha256 != file_sha256(run_dir / "model.keras"):
        # Each variant is measured against the Keras model it was converted from.
        raise UserError(f"{manifest_path}: its files were converted from another model.keras "
                        f"than {run_dir}'s: run edgekit convert {run_dir} again")
    backends = installed_backends() | {backend for backend, _ in settings.runtime_pythons}
    subjects = plan_subjects(run_dir / "artifacts", manifest, settings.threads, backends,
                             settings.tta, keras_model=run_dir / "model.keras")
    if manifest is None:
        subjects.append(Subject("(artifacts)", "-", 0, manifest_path, "-", "-",
                                error="no artifacts/manifest.json: run edgekit convert first"))
    runnable = [s for s in subjects if not s.error]
    accuracy_steps = 1 + len({(s.variant, s.runtime) for s in runnable if s.variant != "keras"})
    steps = accuracy_steps + measuring_steps(subjects, settings)
    # Decoded before the bench bar opens: decoding's own bar inside it would nest, which off a
    # terminal leaves cursor-up codes in the log.
    labels = read_labels(run_dir)
    _, splits = run_splits(read_run_config(run_dir / "config.json")["settings"],
                           settings.data, class_names=labels)
    with progress_bar(steps, "bench", "step") as progress:
        summary = _accuracy_pass(run_dir, splits.test, len(labels), subjects, settings,
                                 progress)
        with watched() as device:
            measure(subjects, settings, progress, KERAS_REFERENCES)
    report = {"run_dir": str(run_dir), "environment": environment(command),
              "settings": settings.recorded(),
              "labels": labels,
              **summary, "rows": rows(subjects, settings), "device": device,
              "device_check": device_check_verdicts(manifest)}
    write_report(run_dir / "report", report)
    return report, any(row["error"] for row in report["rows"])
