"""Sharpness-aware minimization (SAM; Foret, Kleiner, Mobahi and Neyshabur 2021).

Each training step takes two gradients: one at the weights w, then one at w + e, where
``e = rho * g / ||g||`` climbs the loss along the first gradient g. The optimizer applies the
second gradient at w, so it prefers weights whose whole neighbourhood has a low loss. A step
costs about two plain steps.

``StudentTrainer`` wraps the model being trained for ``fit``, as ``Distiller`` (a subclass)
does. BatchNorm statistics and Dropout's random state move on with the first pass only: the
second pass runs at weights the model never keeps, so its statistics would describe no model
that is saved. Keras 3 has no backend-neutral hook for a second gradient, so the step is
written for TensorFlow and JAX, the two backends ``edgekit train`` trains with.
"""
from __future__ import annotations

import keras

from edge_runtime.errors import UserError

from .distribute import MIRRORED

_TINY = 1e-12  # keeps rho / ||g|| finite when a batch's gradient vanishes
SAM_BACKENDS = ("tensorflow", "jax")


def check_sam_backend(rho: float, backend: str, plan: str) -> None:
    """Refuse, with one line, a SAM run on a backend or distribution ``plan``
    (train/distribute.py) the step is not written for."""
    if not rho:
        return
    if backend not in SAM_BACKENDS:
        raise UserError(f"--sam needs the tensorflow or jax backend (KERAS_BACKEND={backend})")
    if plan == MIRRORED:
        # Assigning the perturbed weights inside a MirroredStrategy replica would need a
        # cross-replica update per step; JAX's data-parallel step has no such issue.
        raise UserError("--sam does not run under tf.distribute.MirroredStrategy: use one GPU, "
                        "or KERAS_BACKEND=jax for several")


class StudentTrainer(keras.Model):
    """The model being trained, as ``fit`` sees it: predicts what ``student`` predicts; with
    ``sam_rho`` > 0 each step is sharpness-aware. Save ``student``, never the trainer."""

    def __init__(self, student: keras.Model, sam_rho: float = 0.0, **kwargs):
        kwargs.setdefault("name", f"{student.name}_trainer")
        super().__init__(**kwargs)
        self.student, self.sam_rho = student, sam_rho

    @property
    def resumable_variables(self) -> list:
        """What a checkpoint of this run must hold: the student's variables
        (train/checkpoint.py)."""
        return self.student.variables

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, *args):
        if not self.sam_rho:
            return super().train_step(*args)
        if keras.backend.backend() == "jax":
            return self._jax_sam_step(*args)
        return self._tensorflow_sam_step(*args)

    def _tensorflow_sam_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        weights = self.trainable_variables

        def gradients():
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                         training=True)
                scaled = self.optimizer.scale_loss(loss)
            return loss, y_pred, tape.gradient(scaled, weights)

        loss, y_pred, first = gradients()
        originals = [tf.identity(w.value) for w in weights]
        # The student's alone: a Distiller's frozen teacher does not change in a forward pass.
        state = [tf.identity(v.value) for v in self.student.non_trainable_variables]
        scale = self.sam_rho / (tf.linalg.global_norm(first) + _TINY)
        for w, w0, g in zip(weights, originals, first):
            w.assign(w0 + scale * g)
        _, _, sharp = gradients()
        for w, w0 in zip(weights, originals):
            w.assign(w0)
        for v, value in zip(self.student.non_trainable_variables, state):
            v.assign(value)
        self.optimizer.apply_gradients(zip(sharp, weights))
        # Keras' own step feeds its loss metric the same way (a private tracker in Keras 3).
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _jax_sam_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_variables, metrics_variables = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
        (_, (loss, y_pred, non_trainable, metrics_variables)), first = grad_fn(
            trainable, non_trainable, metrics_variables, x, y, sample_weight, training=True,
            optimizer_variables=optimizer_variables)
        norm = jax.numpy.sqrt(sum(jax.numpy.sum(g * g) for g in first))
        scale = self.sam_rho / (norm + _TINY)
        perturbed = [w + scale * g for w, g in zip(trainable, first)]
        # Its returned state is dropped: the model keeps the first pass's.
        _, sharp = grad_fn(perturbed, non_trainable, metrics_variables, x, y, sample_weight,
                           training=True, optimizer_variables=optimizer_variables)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, sharp, trainable)
        # Keras' own JAX step updates its metrics with this (private) helper too.
        logs, metrics_variables = self._update_metrics_variables(
            metrics_variables, loss, x, y, y_pred, sample_weight)
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)
