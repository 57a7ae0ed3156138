"""``edgekit bench FOLDER`` where FOLDER holds converted files and their manifest.json but no
run: RUN_DIR/artifacts, or the files copied to a Raspberry Pi. What a format costs on the
device itself is what a user choosing one needs, and a device has the runtime alone: this
path imports no Keras, TensorFlow, tqdm or matplotlib (without matplotlib the report has no
pictures).

Every file of the manifest that is present is measured through every installed runtime of
its format, as ``edgekit bench RUN_DIR`` measures it (latency, throughput, cold start, memory,
size), but timed against the float32 file of its format instead of Keras; with ``--data``
(labelled images, ``DIR/<class>/*`` or a training tree's ``DIR/test/<class>/*``) also its
accuracy. Files the manifest lists that were not copied over, and formats with no runtime
installed, are listed as not measured, not as failures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge_runtime.errors import UserError, damage_reason
from edge_runtime.image_paths import (
    HELD_OUT_FOLDERS,
    TRAIN_FOLDERS,
    expand_image_paths,
    subfolders,
)
from edge_runtime.manifest import MANIFEST_NAME, read_manifest, variant_file
from edge_runtime.preprocess import decode_files, warn_unreadable
from edge_runtime.progress_line import ProgressLine

from .bench import (
    BACKENDS_BY_FORMAT,
    Subject,
    classes_in_turn,
    file_predictions,
    installed_backends,
    measure,
    measuring_steps,
    plan_subjects,
    rows,
    score,
)
from .settings import BenchSettings

MODEL_SUFFIXES = (".tflite", ".onnx")
# The file of each format that the others are timed against: the model as trained.
FLOAT_VARIANTS = {"tflite": "float32", "onnx": "onnx-float32"}


def is_float_reference(candidate: Subject, subject: Subject) -> bool:
    """Whether ``candidate`` is the float32 file of ``subject``'s format on the same runtime
    (what a smaller or quantized file's speedup is measured against)."""
    return (candidate.variant == FLOAT_VARIANTS.get(subject.format)
            and candidate.runtime == subject.runtime)


def is_files_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of converted files (a manifest.json, no model.keras)."""
    return (path / MANIFEST_NAME).is_file() and not (path / "model.keras").is_file()


def check_bench_target(path: Path) -> None:
    """UserError for a bench target that is neither a run directory nor a folder of converted
    files but looks meant as one: a model file itself, or model files without their manifest
    (copied to a device without it)."""
    if path.is_file() and path.suffix.lower() in MODEL_SUFFIXES:
        raise UserError(f"{path} is a model file: give the folder that holds it and its "
                        f"{MANIFEST_NAME} (or the run directory)")
    if (path.is_dir() and not (path / MANIFEST_NAME).exists()
            and not (path / "model.keras").exists()
            and any(p.suffix.lower() in MODEL_SUFFIXES for p in path.iterdir())):
        raise UserError(f"{path} holds model files but no {MANIFEST_NAME}: copy "
                        f"RUN_DIR/artifacts/{MANIFEST_NAME} beside them (the benchmark "
                        "measures the files it lists)")


def labelled_images(data: Path, labels: list[str]) -> tuple[list[Path], np.ndarray]:
    """The images under ``data`` and the index in ``labels`` of each one's class, its class
    folder's name: ``data/<class>/...``, or a training tree's held-out images
    (``data/test/<class>/...``; val/ where there is no test/)."""
    if not data.is_dir():
        raise UserError(f"--data {data}: no such folder")
    folders = {f.name.lower(): f for f in subfolders(data)}
    root = next((folders[name] for name in HELD_OUT_FOLDERS if name in folders), data)
    if root is data and any(name in folders for name in TRAIN_FOLDERS):
        raise UserError(f"--data {data} holds training images but no test/ folder: give the "
                        "folder of test images")
    classes = {folder.name: folder for folder in subfolders(root)}
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise UserError(f"--data {root}: class folder(s) {', '.join(unknown)} are not among "
                        f"the model's classes ({', '.join(labels)})")
    paths, classes_of = [], []
    for name in sorted(classes):
        found = list(expand_image_paths([str(classes[name])]))
        paths += found
        classes_of += [labels.index(name)] * len(found)
    if not paths:
        raise UserError(f"--data {root}: no images in class folders (expected "
                        f"{root}/<class>/*)")
    return paths, np.asarray(classes_of, dtype=np.int64)


def decode_labelled(paths: list[Path], size: int, progress: ProgressLine) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """(uint8 pixels of the readable ``paths``, a mask of which were readable), decoded as the
    runtime does; the unreadable ones are counted in one warning, and UserError when none of
    them is readable."""
    pixels, readable, failures = decode_files(paths, size, _Steps(progress))
    if failures and not readable.any():
        raise UserError(f"--data: none of its {len(paths)} images could be read (first: "
                        f"{failures[0]})")
    warn_unreadable(failures)
    return pixels, readable


class _Steps:
    """A ProgressLine counted up one step at a time, as ``bench.measure`` reports progress."""

    def __init__(self, line: ProgressLine):
        self.line, self.done = line, 0

    def update(self, steps: int = 1) -> None:
        self.done += steps
        self.line.update(self.done)


def _not_measured(folder: Path, manifest: dict, backends: set[str]) -> tuple[dict, list]:
    """(the manifest with only the entries that can be measured here, {variant, why} of the
    rest): files not copied over, failed conversions, formats without an installed runtime."""
    keep, skipped = [], []
    for entry in manifest["variants"]:
        runtimes = set(BACKENDS_BY_FORMAT.get(entry.get("format"), ())) & backends
        try:
            path = variant_file(folder, entry)
        except UserError:
            keep.append(entry)  # a row that says why it was refused (bench.plan_subjects)
            continue
        if "error" in entry:
            why = f"its conversion failed ({entry['error']})"
        elif not path.is_file():
            why = f"{entry['file']} is not in {folder}"
        elif not runtimes:
            why = (f"no runtime for {entry.get('format')} installed: pip install "
                   + ("onnxruntime" if entry.get("format") == "onnx" else "ai-edge-litert"))
        else:
            keep.append(entry)
            continue
        skipped.append({"variant": entry["name"], "why": why})
    return {**manifest, "variants": keep}, skipped


def _labels_and_size(path: Path, manifest: dict) -> tuple[list[str], int]:
    """The class labels and input image size the manifest at ``path`` records; UserError
    naming the file when they are missing (a manifest edited by hand, or cut short)."""
    try:
        labels, size = manifest["labels"], int(manifest["input"]["image_size"])
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise TypeError("labels are not a list of names")
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: no labels or input size ({damage_reason(exc)}): copy the "
                        "manifest edgekit convert wrote") from None
    return labels, size


def run_files_bench(folder: Path, settings: BenchSettings, command: str) -> tuple[dict, bool]:
    """Measure the converted files in ``folder``, write FOLDER/report/, return (report, any
    measured file failed). UserError when none of its files can be measured here."""
    from .device_state import watched
    from .environment import device_check_verdicts, environment
    from .report import write_report

    manifest = read_manifest(folder / MANIFEST_NAME)
    backends = installed_backends() | {backend for backend, _ in settings.runtime_pythons}
    measurable, skipped = _not_measured(folder, manifest, backends)
    if not measurable["variants"]:
        reasons = "; ".join(f"{s['variant']}: {s['why']}" for s in skipped) or "it lists none"
        raise UserError(f"{folder}/{MANIFEST_NAME}: no file to measure here ({reasons})")
    labels, size = _labels_and_size(folder / MANIFEST_NAME, manifest)
    subjects = plan_subjects(folder, measurable, settings.threads, backends, settings.tta)
    test_images = 0
    if settings.data:
        paths, y = labelled_images(Path(settings.data).expanduser(), labels)
        chosen = classes_in_turn(y, settings.test_limit)
        paths, y = [paths[i] for i in chosen], y[chosen]
        with ProgressLine("decoding", len(paths), sys.stderr) as line:
            x, readable = decode_labelled(paths, size, line)
        y = y[readable]
        test_images = len(y)
    runnable = len({(s.variant, s.runtime) for s in subjects}) if settings.data else 0
    with ProgressLine("bench", runnable + measuring_steps(subjects, settings),
                      sys.stderr) as line:
        steps = _Steps(line)
        if settings.data:
            score(subjects, file_predictions(subjects, x, settings, steps), y, len(labels))
        with watched() as device:
            measure(subjects, settings, steps, {"float32": is_float_reference})
    report = {"run_dir": str(folder), "environment": environment(command),
              "settings": settings.recorded(), "labels": labels,
              "test_images": test_images, "keras_accuracy": None,
              "rows": rows(subjects, settings), "not_measured": skipped, "device": device,
              "device_check": device_check_verdicts(manifest)}
    write_report(folder / "report", report)
    return report, any(row["error"] for row in report["rows"])

