"""Checks an artifact against the Keras model on the probe images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.interpreters import load_model

VERIFY_BATCH = 100  # images per interpreter call; the batch dimension is resized to it


def predict_file(path: Path, images: np.ndarray) -> tuple[np.ndarray, dict]:
    """Probabilities of the artifact at ``path`` for scaled images, and its IO description."""
    model = load_model(path)
    outputs = [model.predict(images[i:i + VERIFY_BATCH])
               for i in range(0, len(images), VERIFY_BATCH)]
    return np.concatenate(outputs), model.describe()


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 agreement and max |difference| of probabilities, plus both accuracies."""
    return {
        "probe_images": int(len(reference)),
        "top1_agreement": float(np.mean(reference.argmax(1) == candidate.argmax(1))),
        "max_abs_diff": float(np.max(np.abs(reference - candidate))),
        "probe_accuracy": float(np.mean(candidate.argmax(1) == labels)),
        "keras_probe_accuracy": float(np.mean(reference.argmax(1) == labels)),
    }
