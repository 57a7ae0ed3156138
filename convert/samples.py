"""Calibration and probe images for conversion, taken from the run's own data split.

Calibration uses training images only (a seeded sample); verification probes use validation
images, so the test set stays untouched for final figures. Both are uint8 and are scaled by
the shared ``scale_pixels`` before they reach a converter or a model.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .run_dir import TrainedRun


@dataclass
class Samples:
    """uint8 images (N, H, W, 3): calibration from train, probe from validation."""

    calibration: np.ndarray
    probe: np.ndarray
    probe_labels: np.ndarray


def draw_samples(run: TrainedRun, calibration_size: int, probe_size: int, seed: int,
                 data: Optional[str] = None) -> Samples:
    """Re-create the run's split (its stored settings) and draw seeded samples from it (the
    sizes checked with the conversion's settings)."""
    from edgekit.train.data import run_splits

    config, splits = run_splits(run.config["settings"], data, class_names=run.class_names)
    if splits.fingerprint != run.config.get("data_fingerprint"):
        print(f"warning: the data at {config.data} differs from what {run.path} was trained on "
              "(fingerprint mismatch); samples come from the data as it is now", file=sys.stderr)
    rng = np.random.default_rng(seed)
    calibration = rng.choice(len(splits.train), min(calibration_size, len(splits.train)),
                             replace=False)
    probe = np.sort(rng.choice(len(splits.val), min(probe_size, len(splits.val)), replace=False))
    return Samples(splits.train.x[np.sort(calibration)], splits.val.x[probe], splits.val.y[probe])
