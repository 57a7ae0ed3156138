"""Classification metrics from predicted probabilities, in numpy (no scikit-learn needed)."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_metrics(
    probabilities: np.ndarray, y_true: np.ndarray, class_names: list[str]
) -> dict:
    """Accuracy, mean cross-entropy loss and per-class precision/recall/F1/support."""
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive),
                          where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive),
                   where=denominator > 0)
    picked = probabilities[np.arange(len(y_true)), y_true]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "support": int(actual[i])}
        for i, name in enumerate(class_names)
    }
    return {
        "test_accuracy": float(np.mean(y_pred == y_true)),
        "test_loss": loss,
        "num_test_images": int(len(y_true)),
        "macro_avg": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                      "f1": float(f1.mean())},
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def format_report(metrics: dict) -> str:
    """A text table in the layout of scikit-learn's ``classification_report``."""
    names = list(metrics["per_class"])
    width = max(12, max(len(n) for n in names))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:>{width}} {row['precision']:9.4f} {row['recall']:9.4f} "
                     f"{row['f1']:9.4f} {row['support']:9d}")
    total = metrics["num_test_images"]
    macro = metrics["macro_avg"]
    lines += ["", f"{'accuracy':>{width}} {'':>9} {'':>9} {metrics['test_accuracy']:9.4f} {total:9d}",
              f"{'macro avg':>{width}} {macro['precision']:9.4f} {macro['recall']:9.4f} "
              f"{macro['f1']:9.4f} {total:9d}"]
    if "train_accuracy" in metrics:
        lines += ["", "accuracy without augmentation on the training split "
                  f"{metrics['train_accuracy']:.4f}, on the validation split "
                  f"{metrics['val_accuracy']:.4f}"]
    return "\n".join(lines) + "\n"
