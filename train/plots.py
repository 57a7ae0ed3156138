"""The pictures users of the reference notebook expect, saved as PNG files (never shown)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers, CI or a headless Pi
import matplotlib.pyplot as plt
import numpy as np

from edgekit.common.atomic import atomic_path


def save_figure(figure, target: Path) -> None:
    """Save ``figure`` as a PNG at ``target`` atomically and close it. Characters the font
    lacks (class names in Chinese, say) are drawn as boxes: one note per picture says so,
    instead of matplotlib's warning per character."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    missing = {str(w.message) for w in caught if "missing from font" in str(w.message)}
    for warning in caught:  # any other warning goes on as raised
        if str(warning.message) not in missing:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    if missing:
        print(f"note: {target.name}: the font has no glyph for {len(missing)} character(s) of "
              "the labels, drawn as boxes", file=sys.stderr)


def training_curves(history: list[dict], target: Path) -> None:
    """Loss and accuracy per epoch, training against validation."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for axis, key, title in ((loss_ax, "loss", "Loss"), (acc_ax, "accuracy", "Accuracy")):
        axis.plot(epochs, [row[key] for row in history], label="train")
        axis.plot(epochs, [row[f"val_{key}"] for row in history], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, target)


def confusion_matrix_plot(matrix: np.ndarray, class_names: list[str], target: Path) -> None:
    """Counts of true (rows) against predicted (columns) classes, with the numbers written in."""
    size = max(5.0, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    if len(class_names) <= 20:
        for (row, col), count in np.ndenumerate(matrix):
            axis.text(col, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if count > threshold else "black")
    axis.set_title("Confusion matrix (test set)")
    save_figure(figure, target)


# The characters of a class name that fit a title of the sample grid's 2.2-inch columns at
# 8 points, beside its score: longer names ran into the next image's title.
TITLE_CHARACTERS = 18


def fitted(name: str, limit: int = TITLE_CHARACTERS) -> str:
    """``name``, cut to ``limit`` characters with an ellipsis when longer."""
    return name if len(name) <= limit else name[:limit - 1] + "\u2026"


def sample_predictions(images: np.ndarray, y_true: np.ndarray, probabilities: np.ndarray,
                       class_names: list[str], target: Path, count: int = 25) -> None:
    """A grid of test images titled 'predicted (score)', green when right and red when wrong."""
    count = min(count, len(images))
    columns = 5
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows))
    for i, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if i >= count:
            continue
        predicted = int(probabilities[i].argmax())
        axis.imshow(images[i])
        axis.set_title(f"{fitted(class_names[predicted])} ({probabilities[i, predicted]:.2f})"
                       f"\ntrue: {fitted(class_names[y_true[i]])}", fontsize=8,
                       color="green" if predicted == y_true[i] else "red")
    save_figure(figure, target)
