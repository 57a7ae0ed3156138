"""A study's files as measured on the device: ``edgekit study --devices-report
DEVICE/benchmark.json``, the report of ``edgekit bench`` run on the device over the study's
converted files (a cell's artifacts folder copied there, or several).

Each study row whose file the device measured (the same sha256, runtime and test-time
augmentation; at the device's largest thread count, as a cell's own rows are taken) gains
that latency, and the study's latency budget is then held against it instead of the
benchmark machine's.
"""
from __future__ import annotations

from pathlib import Path

from edge_runtime.errors import UserError, printable

from .compare import read_report

DEVICE_LATENCY = "device_latency_median_ms"


def device_name(report: dict) -> str:
    """The measuring machine in a few words: "Cortex-A76 (aarch64), 4 cores"."""
    env = report["environment"]
    return (f"{env.get('cpu') or env.get('machine')} ({env.get('machine')}), "
            f"{env.get('cores')} cores")


def read_device_reports(paths: list[Path]) -> list[dict]:
    """The device reports at ``paths``; UserError for one that is not a benchmark report or
    whose rows record no sha256 (nothing to match the study's files by)."""
    reports = []
    for path in paths:
        report = read_report(path)
        if not any(row.get("sha256") and not row.get("error") for row in report["rows"]):
            raise UserError(f"{printable(report['path'])}: no measured row records its file's "
                            "sha256 (nothing measured, or an older edgekit): run edgekit bench "
                            "on the device again")
        reports.append(report)
    return reports


def add_device_latencies(rows: list[dict], reports: list[dict]) -> int:
    """Set ``device_latency_median_ms`` and ``device`` on each row whose file a device report
    measured; how many rows got one."""
    measured: dict[tuple, tuple[int, float, str]] = {}
    for report in reports:
        for row in report["rows"]:
            if row.get("error") or not row.get("sha256") or row.get("latency_median_ms") is None:
                continue
            key = (row["sha256"], row.get("runtime"), row.get("tta", "none"))
            threads = row.get("threads") or 0
            if key not in measured or threads > measured[key][0]:
                measured[key] = (threads, row["latency_median_ms"], device_name(report))
    matched = 0
    for row in rows:
        found = measured.get((row.get("sha256"), row.get("runtime"), row.get("tta", "none")))
        if found and not row.get("error"):
            threads, row[DEVICE_LATENCY], row["device"] = found
            row["device"] += f", {threads} thread(s)"
            matched += 1
    return matched
