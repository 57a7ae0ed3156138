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


# A quantized variant may lose a little accuracy; this much means the quantization broke (one
# seen: int8 at 29% of a model at 87%, through a few channels whose range swamped the rest).
ACCURACY_DROP_WARNING = 0.05


def accuracy_warning(checks: dict) -> str | None:
    """A one-line warning when a variant's probe accuracy is far below the Keras model's."""
    drop = checks["keras_probe_accuracy"] - checks["probe_accuracy"]
    if drop <= ACCURACY_DROP_WARNING:
        return None
    return (f"{100 * checks['probe_accuracy']:.1f}% top-1 on the {checks['probe_images']} probe "
            f"images against Keras' {100 * checks['keras_probe_accuracy']:.1f}%: the "
            "quantization lost too much; compare the variants with edgekit bench")
