"""The Keras pieces a recipe turns into: optimizer with its schedule, and the loss."""
from __future__ import annotations

import math

import keras

from edge_runtime.errors import UserError

from .distill import DistillationLoss
from .recipes import Recipe


@keras.saving.register_keras_serializable(package="edgekit")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to zero."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(1, self.warmup_steps)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        progress = ops.clip(progress, 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def learning_rate(recipe: Recipe, steps_per_epoch: int, epochs: int):
    """The recipe's learning rate, or its schedule laid out over ``epochs``."""
    if recipe.schedule == "cosine":
        return WarmupCosine(recipe.learning_rate, int(recipe.warmup_epochs * steps_per_epoch),
                            epochs * steps_per_epoch)
    if recipe.schedule == "constant":
        return recipe.learning_rate
    raise UserError(f"unknown schedule {recipe.schedule!r}: use constant or cosine")


def make_optimizer(recipe: Recipe, steps_per_epoch: int,
                   epochs: int | None = None) -> keras.optimizers.Optimizer:
    """The recipe's optimizer with its learning-rate schedule over ``epochs`` (default: the
    recipe's)."""
    rate = learning_rate(recipe, steps_per_epoch, epochs or recipe.epochs)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    if recipe.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay)
    elif recipe.optimizer == "sgd":
        # Nesterov momentum; Keras applies weight_decay decoupled, which for SGD equals an L2
        # penalty of the same coefficient (the classic CIFAR ResNet recipe: 0.1, 0.9, 5e-4).
        optimizer = keras.optimizers.SGD(rate, momentum=0.9, nesterov=True,
                                         weight_decay=recipe.weight_decay)
    else:
        raise UserError(f"unknown optimizer {recipe.optimizer!r}: use adam, adamw or sgd")
    # Decay only kernels: shrinking BatchNorm scales and biases only costs accuracy.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def make_loss(recipe: Recipe, num_classes: int) -> keras.losses.Loss:
    """Categorical cross-entropy on one-hot targets, with the recipe's label smoothing; with a
    teacher, the distillation loss on [labels | teacher probabilities] targets."""
    if recipe.teacher:
        return DistillationLoss(num_classes, recipe.distill_weight, recipe.distill_temperature,
                                recipe.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
