"""Timing several candidates fairly on a noisy shared machine: warm each up, then run them in
alternating rounds (order reversed every other round) so drift hits all of them alike, and
compare them as ratios within each round."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_rounds(candidates: dict[str, Callable[[], object]], rounds: int = 15,
                       calls: int = 200, warmup: int = 100) -> dict[str, list[float]]:
    """Milliseconds per call of each candidate, one figure per round."""
    for run in candidates.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            run = candidates[name]
            started = time.perf_counter()
            for _ in range(calls):
                run()
            times[name].append(1000 * (time.perf_counter() - started) / calls)
    return times


def ratio_summary(numerator: list[float], denominator: list[float]) -> dict:
    """Median, min and max of the per-round ratios numerator/denominator."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def spread(values: list[float]) -> dict:
    """Median, min and max of per-round figures."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
