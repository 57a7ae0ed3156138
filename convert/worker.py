"""Builds one variant in a child process.

The TFLite converter leaks about 20 MB per call (docs/dependencies.md) and tf_keras would leak
into the parent's Keras 3 state, so every variant is built in a fresh process; a converter
crash then costs only that variant.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .settings import ConvertSettings

# Integer variants quantize a BN-folded, equivalent graph (see fold.py): measured on the
# reference CNN, post-training int8 lost 0.14 points folded against 0.50 as trained.
# The integer variants whose layers are measured against float here (the quantization-aware
# ones are measured where their float reference is made), and on how many probe images.
LAYER_REPORTED = ("int8", "int8-per-tensor", "onnx-int8")
LAYER_REPORT_IMAGES = 100
FOLDED_VARIANTS = {"int8", "int8-per-tensor", "int8-mediapipe", "int8-mixed", "int16x8",
                   "onnx-int8", "onnx-int8-mixed",
                   "dynamic-int8", "qat-int8", "qat-int8-per-tensor"}


class BuildFailed(Exception):
    """A variant's build failed in its child process: "TypeName: the error's last line"."""


def variant_child(connection, parent_pid: int, *arguments) -> None:
    """The child process's body: ``build_variant(*arguments)``'s facts, or BuildFailed, sent
    back over ``connection``. It ends itself when its parent dies (a SIGKILL leaves no worker
    converting on for nobody); the parent kills it on Ctrl-C and SIGTERM."""
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        outcome = build_variant(*arguments)
    except Exception as exc:  # noqa: BLE001 - reported as this variant's error
        # Not the exception itself: a library's exception may not pickle.
        lines = str(exc).strip().splitlines()
        outcome = BuildFailed(f"{type(exc).__name__}: {lines[-1] if lines else ''}")
    connection.send(outcome)
    connection.close()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def build_variant(run_dir: str, name: str, calibration_file: str, target: str,
                  metadata: dict, settings: ConvertSettings, label: str = "") -> dict:
    """Convert RUN_DIR/model.keras into variant ``name`` at ``target``, with labels and the
    variant's input normalization embedded; returns timing (and fine-tuning) facts.

    ``settings``: the conversion's; ``fold_batchnorm`` (integer variants), ``seed``,
    ``qat_epochs``, ``qat_learning_rate`` and ``data`` (QAT) matter here.
    ``label`` names the variant in the fine-tuning's progress lines ("[7/10] qat-int8").
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The user's stderr, kept before the output goes to the log: fine-tuning reports there.
    user_stream = os.fdopen(os.dup(2), "w", buffering=1)
    _redirect_output(target + ".log")
    import keras
    import numpy as np

    from edge_runtime.preprocess import scale_pixels

    from . import onnx_variants, tflite_metadata, tflite_variants
    from .mixed import mixed_int8, mixed_onnx_int8
    from .onnx_metadata import with_metadata
    from .variants import VARIANTS

    started = time.perf_counter()
    variant = VARIANTS[name]
    model = keras.saving.load_model(Path(run_dir) / "model.keras", compile=False)
    with np.load(calibration_file) as saved:
        pixels = saved["calibration"]
        probe = scale_pixels(saved["probe"][:LAYER_REPORT_IMAGES], variant.norm_mean,
                             variant.norm_std)
    calibration = scale_pixels(pixels, variant.norm_mean, variant.norm_std)
    facts: dict = {}
    if variant.name in FOLDED_VARIANTS and settings.fold_batchnorm:
        from .fold import fold_batchnorm

        # QAT also folds BN into the convolution before it, which tfmot would not (fold.py)
        model, folded = fold_batchnorm(model, into_convolutions=variant.precision == "qat-int8")
        facts["batchnorm_folded"] = folded
    builders = {
        "float32": lambda: tflite_variants.float32(model),
        "float16": lambda: tflite_variants.float16(model),
        "dynamic-int8": lambda: tflite_variants.dynamic_int8(model),
        "int8": lambda: tflite_variants.full_int8(model, calibration),
        "int8-per-tensor": lambda: tflite_variants.full_int8(model, calibration,
                                                             per_channel=False),
        "int8-mediapipe": lambda: tflite_variants.mediapipe_uint8(model, calibration),
        "int16x8": lambda: tflite_variants.int16x8(model, calibration),
        "int8-mixed": lambda: _mixed(mixed_int8, model, Path(run_dir), calibration, probe,
                                     settings, facts),
        "onnx-int8-mixed": lambda: _mixed(mixed_onnx_int8, model, Path(run_dir), calibration,
                                          probe, settings, facts),
        "onnx-float32": lambda: onnx_variants.float32(model),
        "onnx-int8": lambda: onnx_variants.int8_qdq(onnx_variants.float32(model), calibration),
        "qat-int8": lambda: _quantization_aware(model, Path(run_dir), calibration, probe,
                                                settings, facts, (label, user_stream)),
        "qat-int8-per-tensor": lambda: _quantization_aware(model, Path(run_dir), calibration,
                                                           probe, settings, facts,
                                                           (label, user_stream),
                                                           per_channel=False),
    }
    content = builders[name]()
    if name in LAYER_REPORTED:
        facts["quantization_layers"] = _layer_report(name, model, calibration, probe)
    info = dict(metadata, norm_mean=variant.norm_mean, norm_std=variant.norm_std)
    if variant.format == "onnx":
        content = with_metadata(content, info)
    else:
        description = f"{variant.description}; source sha256 {metadata['source_model_sha256']}"
        flat = tflite_metadata.build_metadata(metadata["model_name"], description,
                                              len(metadata["labels"]), metadata["image_size"],
                                              variant.norm_mean, variant.norm_std)
        content = tflite_metadata.populate(content, flat, metadata["labels"])
    Path(target).write_bytes(content)
    return dict(facts, conversion_seconds=round(time.perf_counter() - started, 2))


def _layer_report(name: str, model, calibration, probe) -> list[dict]:
    """Each layer's quantization error on the probe images (convert/quant_report.py)."""
    import tempfile

    from . import onnx_variants, tflite_variants
    from .quant_report import onnx_layers, tflite_layers

    if name == "onnx-int8":
        float_model = onnx_variants.float32(model)
        with tempfile.TemporaryDirectory() as work:
            return onnx_layers(float_model, onnx_variants.int8_qdq(float_model, calibration),
                               probe, work)
    # Float input and output: the debugger feeds float images; the layers are the same.
    converter = tflite_variants.int8_converter(model, calibration, "float32", "float32",
                                               per_channel=name == "int8")
    return tflite_layers(converter, probe)


def _mixed(make_mixed, model, run_dir: Path, calibration, probe, settings: ConvertSettings,
           facts: dict) -> bytes:
    """``make_mixed`` (convert/mixed.py) within ``settings.max_drop`` on the run's validation
    split."""
    import json

    from edge_runtime.preprocess import scale_pixels
    from edgekit.train.data import run_splits

    run_settings = json.loads((run_dir / "config.json").read_text())["settings"]
    _, splits = run_splits(run_settings, settings.data)
    content, facts["mixed"] = make_mixed(model, calibration, probe,
                                         (scale_pixels(splits.val.x), splits.val.y),
                                         settings.max_drop)
    return content


def _quantization_aware(model, run_dir: Path, calibration, probe, settings: ConvertSettings,
                        facts: dict, progress: tuple, per_channel: bool = True) -> bytes:
    """Fine-tune with fake quantization (weight scales per output channel, or one per tensor)
    on the run's own training split and recipe augmentation, then convert; records the
    settings, history and per-layer report (against the fine-tuned weights in float) in
    ``facts``. ``progress``: (label, stream) for the epochs' progress."""
    import json

    from edge_runtime.preprocess import scale_pixels
    from edgekit.train.augment import EpochData, one_hot
    from edgekit.train.data import run_splits

    from .qat import quantization_aware_int8
    from .quant_report import tflite_file_layers

    run_settings = json.loads((run_dir / "config.json").read_text())["settings"]
    config, splits = run_splits(run_settings, settings.data)
    classes = len(splits.class_names)
    recipe = config.recipe
    epochs_data = EpochData.for_recipe(splits.train.x, splits.train.y, classes, recipe,
                                       config.seed)
    validation = (scale_pixels(splits.val.x), one_hot(splits.val.y, classes))
    content, history, fine_tuned_float = quantization_aware_int8(
        model, epochs_data, settings.qat_epochs, settings.qat_learning_rate, validation,
        calibration, settings.seed, recipe.label_smoothing, per_channel, progress)
    facts["quantization_layers"] = tflite_file_layers(content, fine_tuned_float, probe)
    facts["qat"] = {"epochs": settings.qat_epochs,
                    "learning_rate": settings.qat_learning_rate,
                    "batch_size": recipe.batch_size, "history": history}
    return content


def _redirect_output(log_file: str) -> None:
    """Send this process's stdout and stderr (converter chatter, C++ logs) to ``log_file``:
    the user sees one progress line per variant, and the log stays for when one fails."""
    handle = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
