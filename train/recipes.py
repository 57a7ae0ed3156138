"""Training recipes: optimizer, schedule, loss and augmentation as one frozen record.

``seed`` reproduces the reference notebook (Adam 1e-3, batch 64, no augmentation, 15 epochs).
``fast`` is our default; see docs/results.md for what it measured against ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from edge_runtime.errors import UserError


@dataclass(frozen=True)
class Recipe:
    """Everything about how a model is trained (not what it is trained on)."""

    name: str
    epochs: int
    batch_size: int
    learning_rate: float      # peak rate, per batch of ``batch_size``
    optimizer: str            # "adam" | "adamw" | "sgd" (Nesterov momentum 0.9)
    weight_decay: float       # decoupled (AdamW, SGD): each step shrinks kernels by lr * weight_decay
    schedule: str             # "constant" | "cosine" (linear warm-up, then cosine to zero)
    warmup_epochs: float
    label_smoothing: float
    crop_pad: int             # pixels of reflect padding before the random crop; 0 = no crop
    flip: bool                # random horizontal mirror
    # Fields with defaults were added later; the defaults keep older config.json files loadable.
    cutout: int = 0           # side of the grey square of Cutout; 0 = off
    mixup: float = 0.0        # alpha of mixup's Beta(alpha, alpha) blend weights; 0 = off
    teacher: Optional[str] = None     # run directory to distill from (train/distill.py)
    distill_weight: float = 0.9       # share of the loss that follows the teacher
    distill_temperature: float = 4.0  # softening of both distributions in that share
    sam_rho: float = 0.0      # sharpness-aware minimization's radius (train/sharpness.py); 0 = off


RECIPES = {
    "seed": Recipe("seed", epochs=15, batch_size=64, learning_rate=1e-3, optimizer="adam",
                   weight_decay=0.0, schedule="constant", warmup_epochs=0.0,
                   label_smoothing=0.0, crop_pad=0, flip=False),
    "fast": Recipe("fast", epochs=60, batch_size=128, learning_rate=3e-3, optimizer="adamw",
                   weight_decay=5e-4, schedule="cosine", warmup_epochs=3.0,
                   label_smoothing=0.1, crop_pad=2, flip=True),
}
DEFAULT_RECIPE = "fast"  # what edgekit train uses without --recipe


def resolve_recipe(name: str, **overrides) -> Recipe:
    """The named recipe with every non-None override applied."""
    if name not in RECIPES:
        raise UserError(f"unknown --recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
