"""Seeded, stratified splits of a labelled data set.

Two protocols:
- ``standard``: the official test set is kept; validation is carved out of train
  (``val_fraction`` of every class). A source without a test set gets its test set carved out
  the same way.
- ``A/B/C`` percentages (e.g. the reference project's ``70/15/15``): all images, train and test
  pooled, are split into train/validation/test, stratified by class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from edge_runtime.errors import UserError
from edge_runtime.progress_line import counted


@dataclass(frozen=True)
class SplitSpec:
    """A parsed ``--split`` value: ``percentages`` is None for the standard protocol."""

    percentages: Optional[Tuple[int, int, int]]

    def __str__(self) -> str:
        if self.percentages is None:
            return "standard"
        return "/".join(str(p) for p in self.percentages)


def parse_split(text: str) -> SplitSpec:
    """Parse ``standard`` or ``TRAIN/VAL/TEST`` integer percentages that sum to 100."""
    text = text.strip().lower()
    if text == "standard":
        return SplitSpec(None)
    parts = text.split("/")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(v <= 0 for v in values) or sum(values) != 100:
        raise UserError(
            f"bad --split {text!r}: use 'standard' or three positive integer percentages "
            "that sum to 100, e.g. 70/15/15"
        )
    return SplitSpec(values)  # type: ignore[arg-type]


def check_val_fraction(value: float) -> None:
    """UserError unless ``--val-fraction`` lies between 0 and 0.5 (a NaN is refused too)."""
    if not 0 < value < 0.5:
        raise UserError(f"--val-fraction must be between 0 and 0.5, got {value}")


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int,
    class_names: Optional[Sequence[str]] = None,
) -> list[np.ndarray]:
    """Split indices of ``labels`` into parts, stratified by class.

    ``fractions`` gives the share of every part but the first; the first part takes the rest.
    Each class is shuffled with a generator seeded by ``seed`` and its images are cut by
    rounded shares, at least one image for a share above zero (else a small class would be
    missing from validation or test, and a test accuracy of 100% would hide it); the parts
    never overlap and together hold every index. Returns one sorted index array per part
    (first part first). ``class_names`` name the classes in errors.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        counts = [max(1, int(round(len(members) * f))) if f > 0 else 0 for f in fractions]
        first = len(members) - sum(counts)
        if first < 1:
            name = repr(class_names[cls]) if class_names is not None else str(int(cls))
            raise UserError(
                f"class {name} has only {counted(len(members), 'image')}: "
                f"too few to split into {len(fractions) + 1} parts of at least one image each; "
                "add images of it"
            )
        edges = np.cumsum([first] + counts)
        for part, chunk in zip(parts, np.split(members, edges[:-1])):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]
