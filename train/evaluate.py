"""Evaluation artifacts of a run: metrics.json, classification_report.txt and the pictures.

``edgekit evaluate RUN_DIR [--data ...]`` recomputes them for a saved model; training calls the
same function at the end of a run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from edge_runtime.preprocess import scale_pixels
from edgekit.common.atomic import write_json, write_text

from . import plots
from .data import DataSplits, Labeled
from .labels import read_labels
from .metrics import classification_metrics, format_report

EVAL_BATCH = 500  # images per predict() batch: large enough to amortise per-call overhead


def predict_probabilities(model, images: np.ndarray) -> np.ndarray:
    """Softmax outputs of ``model`` for uint8 images, scaled by the shared preprocessing."""
    return np.asarray(model.predict(scale_pixels(images), batch_size=EVAL_BATCH, verbose=0))


def fit_accuracy(model, part: Labeled) -> float:
    """Top-1 accuracy on un-augmented images with Dropout inert. history.csv's training
    accuracy is taken on augmented batches with Dropout active, which hides how closely the
    model fits the images it trained on (for seed_cnn by seven points, see docs/results.md)."""
    return float(np.mean(predict_probabilities(model, part.x).argmax(axis=1) == part.y))


def write_evaluation(model, splits: DataSplits, run_dir: Path,
                     extra: Optional[dict] = None) -> dict:
    """Evaluate ``model`` on the test split and write metrics, report and pictures into
    ``run_dir``; metrics.json also gets the accuracy on the training and validation splits."""
    test, class_names = splits.test, splits.class_names
    probabilities = predict_probabilities(model, test.x)
    metrics = classification_metrics(probabilities, test.y, class_names)
    metrics["train_accuracy"] = fit_accuracy(model, splits.train)
    metrics["val_accuracy"] = fit_accuracy(model, splits.val)
    metrics.update(extra or {})
    write_json(run_dir / "metrics.json", metrics)
    write_text(run_dir / "classification_report.txt", format_report(metrics))
    plots.confusion_matrix_plot(np.asarray(metrics["confusion_matrix"]), class_names,
                                run_dir / "confusion_matrix.png")
    plots.sample_predictions(test.x, test.y, probabilities, class_names,
                             run_dir / "sample_predictions.png")
    return metrics


def evaluate_run(run_dir: Path, data: Optional[str], cache_dir: Optional[Path]) -> dict:
    """Recompute a finished run's evaluation files, on its own data or on ``data``."""
    from .finished_run import check_finished_run, load_keras_model, read_run_config
    from .data import run_splits

    check_finished_run(run_dir)
    model_file = run_dir / "model.keras"
    config_file = run_dir / "config.json"
    config, splits = run_splits(read_run_config(config_file)["settings"], data, cache_dir,
                                read_labels(run_dir))
    model = load_keras_model(model_file, compile=True)
    try:  # the training facts it recorded are kept; a damaged file is written anew
        previous = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        previous = {}
    previous = previous if isinstance(previous, dict) else {}
    keep = {k: previous[k] for k in ("epochs_trained", "train_seconds", "seconds_per_epoch",
                                     "train_images_per_second", "epoch_seconds_split")
            if k in previous}
    return write_evaluation(model, splits, run_dir, dict(keep, evaluated_on=config.data))
