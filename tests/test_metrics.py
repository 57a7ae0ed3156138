"""Run metrics: the accuracy on un-augmented training images, and the report line for it."""
import numpy as np

from edgekit.train.data import Labeled
from edgekit.train.evaluate import fit_accuracy
from edgekit.train.metrics import classification_metrics, format_report


class FixedPredictions:
    """Stands in for a Keras model: predicts class ``index % 3`` for image ``index``."""

    def predict(self, images, batch_size, verbose):
        return np.eye(3, dtype=np.float32)[np.arange(len(images)) % 3]


def test_fit_accuracy_counts_top1_hits_on_the_images_given():
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    # predictions are 0, 1, 2, 0: three of these four labels match
    assert fit_accuracy(FixedPredictions(), Labeled(images, np.array([0, 1, 2, 2]))) == 0.75


def test_report_shows_training_and_validation_accuracy_when_known():
    metrics = classification_metrics(np.eye(3)[[0, 1, 2]], np.array([0, 1, 1]), ["a", "b", "c"])
    assert "training split" not in format_report(metrics)
    metrics.update(train_accuracy=0.9193, val_accuracy=0.846)
    assert format_report(metrics).endswith(
        "accuracy without augmentation on the training split 0.9193, on the validation split "
        "0.8460\n")
