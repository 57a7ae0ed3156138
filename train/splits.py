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


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> list[np.ndarray]:
    """Split indices of ``labels`` into parts, stratified by class.

    ``fractions`` gives the share of every part but the first; the first part takes the rest.
    Each class is shuffled with a generator seeded by ``seed`` and its images are cut by
    rounded shares, so the parts never overlap and together hold every index. Returns one
    sorted index array per part (first part first).
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        counts = [int(round(len(members) * f)) for f in fractions]
        first = len(members) - sum(counts)
        if first < 1:
            raise UserError(
                f"class {int(cls)} has only {len(members)} images: too few to split "
                f"into {len(fractions) + 1} parts"
            )
        edges = np.cumsum([first] + counts)
        for part, chunk in zip(parts, np.split(members, edges[:-1])):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]
