"""Resolved settings of one training run, written to ``config.json`` so it can be repeated."""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from typing import Any, Optional

from .recipes import Recipe


@dataclass(frozen=True)
class TrainConfig:
    """What to train on, what to train, and how (the recipe)."""

    data: str                 # "cifar10" or a path
    out: str
    arch: str
    width: float
    recipe: Recipe
    split: str                # "standard" or "A/B/C"
    val_fraction: float       # standard split: share of each class held out for validation
    seed: int
    image_size: int
    cache_dir: Optional[str]
    tensorboard: bool
    init_from: Optional[str] = None  # a finished run whose weights training starts from

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["recipe"] = Recipe(**values["recipe"])
        return cls(**values)


def library_versions() -> dict[str, str]:
    """Versions of what produced a run: Python, numpy, Keras and its backend."""
    import keras
    import numpy

    versions = {"python": platform.python_version(), "numpy": numpy.__version__,
                "keras": keras.__version__, "backend": keras.backend.backend()}
    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if module:
        versions[module] = __import__(module).__version__
    return versions


def compute_devices() -> list[str]:
    """Devices the Keras backend will train on, e.g. ['gpu:0'] or ['cpu:0']."""
    import keras

    if keras.backend.backend() == "torch":  # Keras' distribution API has no torch support
        import torch

        count = torch.cuda.device_count()
        return [f"gpu:{i}" for i in range(count)] or ["cpu:0"]
    return [str(d).lower() for d in keras.distribution.list_devices()]
