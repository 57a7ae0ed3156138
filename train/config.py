"""Resolved settings of one training run, written to ``config.json`` so it can be repeated."""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from typing import Any, Collection, Optional

from .recipes import DEFAULT_RECIPE, RECIPES, Recipe


@dataclass(frozen=True)
class TrainConfig:
    """What to train on, what to train, and how (the recipe). The defaults are ``edgekit
    train``'s."""

    data: str = "cifar10"     # "cifar10" or a path
    out: str = "runs/latest"
    arch: str = "seed_cnn"
    width: float = 1.0
    recipe: Recipe = RECIPES[DEFAULT_RECIPE]
    split: str = "standard"   # "standard" or "A/B/C"
    val_fraction: float = 0.1  # standard split: share of each class held out for validation
    seed: int = 0
    image_size: int = 32
    cache_dir: Optional[str] = None
    tensorboard: bool = False
    init_from: Optional[str] = None  # a finished run whose weights training starts from
    time_budget: Optional[float] = None  # minutes: the epochs that fit, after the first one

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["recipe"] = Recipe(**values["recipe"])
        return cls(**values)


# Where a run's data and files are, not what it learns: a run whose data moved (trained on
# another machine) or whose cache is elsewhere keeps its settings.
PLACE_FIELDS = ("data", "out", "cache_dir", "tensorboard")


def setting_differences(stored: dict, asked: TrainConfig,
                        only: Optional[Collection[str]] = None) -> list[str]:
    """What ``asked`` would train differently from the run whose config.json ``settings``
    are ``stored``, one "epochs 2, asked 60" per setting (the recipe's by their own names,
    spelled as flags are: "label-smoothing"), of the settings named in ``only`` when given;
    where the data and files are is not compared (PLACE_FIELDS)."""
    def flat(config: TrainConfig) -> dict[str, Any]:
        values = config.to_dict()
        recipe = values.pop("recipe")
        recipe["recipe"] = recipe.pop("name")
        return {**{k: v for k, v in values.items() if k not in PLACE_FIELDS}, **recipe}

    was, now = flat(TrainConfig.from_dict(stored)), flat(asked)
    names = {key: key.replace("_", "-") for key in now}
    return [f"{names[key]} {was[key]}, asked {now[key]}" for key in now
            if was[key] != now[key] and (only is None or names[key] in only)]


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
