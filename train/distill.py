"""Knowledge distillation: a small model (the student) learns from a finished run's model (the
teacher) as well as from the labels (Hinton, Vinyals and Dean 2015).

``Distiller`` wraps the student for ``fit``: its ``compute_loss`` (Keras 3's backend-agnostic
hook) runs the frozen teacher on the same augmented batch and hands the loss one target row
``[one-hot labels | teacher probabilities]``. Metrics, validation, checkpoints and resume work as
for any run, under every backend. (Computing the teacher's outputs in the batch generator
instead, which TensorFlow runs in threads of its own, crashed the process at exit: measured.)
"""
from __future__ import annotations

import keras
from keras import ops

from .sharpness import StudentTrainer

_EPSILON = 1e-7  # keeps log() of a saturated softmax finite


def _tempered_log(probabilities, temperature: float):
    """log softmax(log(p) / T): the distribution softened by temperature T."""
    return ops.log_softmax(ops.log(probabilities + _EPSILON) / temperature, axis=-1)


@keras.saving.register_keras_serializable(package="edgekit")
class DistillationLoss(keras.losses.Loss):
    """``weight * T^2 * KL(teacher_T || student_T) + (1 - weight) * CE(labels, student)``.

    T^2 keeps the soft term's gradients on the scale of the hard term's (Hinton et al.); the
    hard term uses the recipe's label smoothing.
    """

    def __init__(self, num_classes: int, weight: float, temperature: float,
                 label_smoothing: float = 0.0, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.weight = num_classes, weight
        self.temperature, self.label_smoothing = temperature, label_smoothing

    def call(self, y_true, y_pred):
        labels, teacher = y_true[:, :self.num_classes], y_true[:, self.num_classes:]
        hard = keras.losses.categorical_crossentropy(labels, y_pred,
                                                     label_smoothing=self.label_smoothing)
        teacher_log = _tempered_log(teacher, self.temperature)
        student_log = _tempered_log(y_pred, self.temperature)
        soft = ops.sum(ops.exp(teacher_log) * (teacher_log - student_log), axis=-1)
        return self.weight * self.temperature ** 2 * soft + (1.0 - self.weight) * hard

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "weight": self.weight,
                "temperature": self.temperature, "label_smoothing": self.label_smoothing}


class Distiller(StudentTrainer):
    """The student for training: predicts what the student predicts, learns from the teacher
    (and, with ``sam_rho`` > 0, by sharpness-aware steps).

    Compile it with a ``DistillationLoss``; save ``student``, never the Distiller.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, sam_rho: float = 0.0,
                 **kwargs):
        super().__init__(student, sam_rho, name=f"{student.name}_distiller", **kwargs)
        teacher.trainable = False
        self.teacher = teacher

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        guidance = ops.stop_gradient(self.teacher(x, training=False))
        return super().compute_loss(x=x, y=ops.concatenate([y, guidance], axis=-1),
                                    y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
