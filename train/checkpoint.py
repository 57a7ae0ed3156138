"""Per-epoch training state: every model variable (weights, BatchNorm statistics, Dropout's
seed-generator state) and every optimizer variable (step, moments), as one .npz file.

A ``.keras`` file is not enough to resume: ``load_model`` gives Dropout a fresh random seed and
drops the optimizer's weight-decay exclusions, so a resumed run would drift from an
uninterrupted one. Rebuilding the model from the run's config and restoring these arrays gives
the same next epoch.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from edge_runtime.errors import UserError

from .atomic import atomic_path


def save_state(model: keras.Model, target: Path) -> None:
    """Write the model's and its optimizer's variables to ``target`` (.npz) atomically."""
    arrays = {f"model_{i:04d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer_{i:04d}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.optimizer.variables)})
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def restore_state(model: keras.Model, source: Path) -> None:
    """Load ``source`` into a freshly built and compiled ``model`` of the same run."""
    model.optimizer.build(model.trainable_variables)
    with np.load(source) as saved:
        for prefix, variables in (("model", model.variables),
                                  ("optimizer", model.optimizer.variables)):
            names = sorted(k for k in saved.files if k.startswith(prefix + "_"))
            if len(names) != len(variables):
                raise UserError(f"{source} does not match this run's model; start again "
                                "with --overwrite")
            for name, variable in zip(names, variables):
                variable.assign(saved[name])
