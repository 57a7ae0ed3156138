"""The study's answer to a budget: "the most accurate file under 100 KB that runs in 1 ms".

Every converted file of every cell (one inference per image: no test-time augmentation
rows; not model.keras) is held against the budgets the study was given: the best that meets
them all, or, when none does, the nearest miss and what it misses. Latency is the cell's own
batch-1 median at the study's thread count, as measured on the benchmark machine, or the
device's where the study was given the device's report (study_devices.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .study_devices import DEVICE_LATENCY


@dataclass(frozen=True)
class Budget:
    """Limits a study's answer must meet; None: no limit."""

    max_bytes: Optional[int] = None
    max_latency_ms: Optional[float] = None
    max_peak_rss_mb: Optional[float] = None
    min_accuracy: Optional[float] = None   # a fraction: 0.85 for 85%
    # The row's figure max_latency_ms limits: the benchmark machine's, or a device's.
    latency_key: str = "latency_median_ms"

    def given(self) -> bool:
        """Whether any limit is set."""
        return any(value is not None for value in (self.max_bytes, self.max_latency_ms,
                                                   self.max_peak_rss_mb, self.min_accuracy))

    def shortfalls(self, row: dict) -> dict[str, float]:
        """{what: by how much, relative to the limit} for each limit ``row`` misses (a figure
        it lacks misses its limit by 1)."""
        missed = {}
        for key, limit, ceiling in (("bytes", self.max_bytes, True),
                                    (self.latency_key, self.max_latency_ms, True),
                                    ("peak_rss_mb", self.max_peak_rss_mb, True),
                                    ("accuracy", self.min_accuracy, False)):
            if limit is None:
                continue
            value = row.get(key)
            if value is None:
                missed[key] = 1.0
            elif ceiling and value > limit:
                missed[key] = (value - limit) / limit
            elif not ceiling and value < limit:
                missed[key] = (limit - value) / limit
        return missed

    def describe(self) -> str:
        """The limits in words: "at most 100,000 bytes, at most 1 ms"."""
        parts = []
        if self.max_bytes is not None:
            parts.append(f"at most {self.max_bytes:,} bytes")
        if self.max_latency_ms is not None:
            parts.append(f"at most {self.max_latency_ms:g} ms"
                         + (" on the device" if self.latency_key == DEVICE_LATENCY else ""))
        if self.max_peak_rss_mb is not None:
            parts.append(f"at most {self.max_peak_rss_mb:g} MiB peak RSS")
        if self.min_accuracy is not None:
            parts.append(f"at least {100 * self.min_accuracy:g}% test accuracy")
        return ", ".join(parts)


def budget_answer(rows: list[dict], budget: Budget) -> Optional[dict]:
    """{"met": bool, "row": the answer, "missed": {what: relative shortfall}} over the rows
    that measured a file (None when no row did): the most accurate row that meets every
    limit (fewer bytes on ties), or the row that misses them by least (the sum of its
    relative shortfalls, then accuracy)."""
    candidates = [row for row in rows if not row.get("error") and row.get("accuracy") is not None
                  and row.get("tta", "none") == "none" and row.get("variant") != "keras"]
    if not candidates:
        return None
    meeting = [row for row in candidates if not budget.shortfalls(row)]
    if meeting:
        best = max(meeting, key=lambda row: (row["accuracy"], -(row.get("bytes") or math.inf)))
        return {"met": True, "row": best, "missed": {}}
    nearest = min(candidates, key=lambda row: (sum(budget.shortfalls(row).values()),
                                               -row["accuracy"]))
    return {"met": False, "row": nearest, "missed": budget.shortfalls(nearest)}


MISSED_WORDS = {"bytes": "size", "latency_median_ms": "latency", "peak_rss_mb": "peak RSS",
                "accuracy": "accuracy", DEVICE_LATENCY: "latency on the device"}


def answer_lines(answer: Optional[dict], budget: Budget, folders: dict) -> list[str]:
    """STUDY.md's opening section for a budget; ``folders``: {cell name: its run directory},
    for the answer's path."""
    lines = ["## The answer", "", f"Budget: {budget.describe()}.", ""]
    if answer is None:
        return lines + ["No cell measured a file: no answer.", ""]
    row = answer["row"]
    figures = (f"{100 * row['accuracy']:.2f}% test accuracy, {row['bytes']:,} bytes, "
               f"{row['latency_median_ms']:.4f} ms median at {row['threads']} thread(s)"
               + (f", {row['peak_rss_mb']:.1f} MiB peak RSS" if row.get("peak_rss_mb") else "")
               + (f"; on the device {row[DEVICE_LATENCY]:.4f} ms median ({row['device']})"
                  if row.get(DEVICE_LATENCY) is not None else ""))
    folder = folders.get(row["cell"], row["cell"])
    where = f"`{folder}/artifacts/{row['file']}`" if row.get("file") else f"`{folder}`"
    if answer["met"]:
        return lines + [f"**{row['cell']}, {row['variant']}** meets it: {figures}; {where}.", ""]
    missed = ", ".join(f"{MISSED_WORDS[key]} (not measured)" if row.get(key) is None else
                       f"{MISSED_WORDS[key]} by {100 * share:.1f}%"
                       for key, share in answer["missed"].items())
    return lines + [f"No file meets it. The nearest miss is **{row['cell']}, {row['variant']}**"
                    f" ({figures}; {where}), which misses {missed}.", ""]
