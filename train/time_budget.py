"""``edgekit train --time-budget MINUTES``: as many epochs as fit the budget on this machine,
with the learning-rate schedule laid out over them, so that training ends with its schedule
completed instead of cut off.

The first epoch runs under the recipe's schedule (its warm-up is the same whatever the total);
its time, graph tracing included and so on the safe side, decides the epochs that fit, at most
the recipe's. The run's config.json records the budget and the choice, and a resumed run keeps
that choice rather than measuring again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

RECORD = "time_budget"  # config.json's key


def epochs_within(minutes: float, first_epoch_seconds: float, most: int) -> int:
    """Epochs of ``first_epoch_seconds`` each that fit ``minutes``, at most ``most``, and at
    least two: the first ran under the recipe's own schedule, so only a second can end the
    schedule laid out anew (a budget that fits one epoch is overrun by one)."""
    fitting = int(minutes * 60 // max(first_epoch_seconds, 1e-9))
    return max(min(2, most), min(most, fitting))


def planned_epochs(config_path: Path) -> Optional[int]:
    """The epochs an interrupted budgeted run chose, from its config.json (None: not chosen
    yet, or no budget)."""
    record = json.loads(config_path.read_text()).get(RECORD)
    return record["epochs"] if isinstance(record, dict) else None


def record_plan(config_path: Path, minutes: float, first_epoch_seconds: float,
                epochs: int) -> None:
    """Write the budget and the epochs chosen for it into config.json."""
    from .finished_run import add_to_run_config

    add_to_run_config(config_path, RECORD, {
        "minutes": minutes, "first_epoch_seconds": round(first_epoch_seconds, 2),
        "epochs": epochs})
