"""``edgekit compare A B``: two benchmark reports of the same files side by side, the host's
and a device's say. Rows are matched by the file's sha256 (and runtime, threads and
test-time augmentation), so that a figure is only ever set beside one of the very same file;
reports of different files are refused."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from edge_runtime.errors import UserError, damage_reason, printable

REPORT_NAME = "benchmark.json"


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit compare``."""
    parser.add_argument("first", type=Path, help="a benchmark.json, its report/ folder or the "
                        "run (or artifacts) folder that holds it: the host's, say")
    parser.add_argument("second", type=Path, help="the other report: the device's, say")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the table to this Markdown file")


def read_report(path: Path) -> dict:
    """The benchmark.json at ``path`` (or in its report/ folder); UserError otherwise."""
    for candidate in (path, path / REPORT_NAME, path / "report" / REPORT_NAME):
        if candidate.is_file():
            break
    else:
        raise UserError(f"{printable(str(path))}: no {REPORT_NAME} there, in report/ or given")
    try:
        report = json.loads(candidate.read_text())
        if not isinstance(report.get("rows"), list) or not isinstance(
                report.get("environment"), dict):
            raise ValueError("it has no rows or no environment")
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"{printable(str(candidate))}: not a benchmark report "
                        f"({damage_reason(exc)})") from None
    report["path"] = str(candidate)
    return report


def _key(row: dict) -> tuple:
    return (row.get("sha256"), row.get("runtime"), row.get("threads"), row.get("tta", "none"))


def _files(report: dict) -> dict[str, str]:
    """{variant: sha256} of the measured files (rows without a sha256: an older report)."""
    return {row["variant"]: row["sha256"] for row in report["rows"]
            if row.get("sha256") and not row.get("error")}


def matched_rows(first: dict, second: dict) -> list[tuple[dict, dict]]:
    """Pairs of rows of the same file, runtime, threads and augmentation; UserError when the
    reports measured different files (no file in common, or a variant whose file differs)."""
    ours, theirs = _files(first), _files(second)
    if not ours or not theirs:
        older = first["path"] if not ours else second["path"]
        raise UserError(f"{printable(older)}: its rows record no sha256 (measured by an older "
                        "edgekit, or nothing measured): run edgekit bench again")
    differing = sorted(name for name in ours.keys() & theirs.keys() if ours[name] != theirs[name])
    if differing or not set(ours.values()) & set(theirs.values()):
        named = differing[0] if differing else None
        detail = (f"{named} is {ours[named][:12]}... in one and {theirs[named][:12]}... in the "
                  "other" if named else "no file in common")
        raise UserError(f"the reports measured different files ({detail}): compare reports "
                        "of the same converted files")
    others = {}
    for row in second["rows"]:
        if not row.get("error"):
            others.setdefault(_key(row), row)
    return [(row, others[_key(row)]) for row in first["rows"]
            if not row.get("error") and _key(row) in others]


def _where(report: dict) -> str:
    env = report["environment"]
    emulated = (report.get("device") or {}).get("emulated")
    return (f"{env.get('cpu', '?')} ({env.get('machine', '?')}, {env.get('cores', '?')} cores)"
            + (f", **emulated**: {emulated}" if emulated else ""))


def _value(row: dict, key: str, scale: float = 1.0, digits: int = 3) -> str:
    value = row.get(key)
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _ratio(first: Optional[float], second: Optional[float]) -> str:
    return f"{second / first:.2f}x" if first and second else "-"


def to_markdown(first: dict, second: dict, pairs: list[tuple[dict, dict]]) -> str:
    """The merged table: accuracy, latency and its ratio, cold start and memory on both."""
    lines = ["# Two benchmark reports of the same files", "",
             f"- A: {_where(first)}, `{first['environment'].get('command', '')}` "
             f"({first['path']})",
             f"- B: {_where(second)}, `{second['environment'].get('command', '')}` "
             f"({second['path']})", "",
             "Rows are matched by the file's sha256, runtime, threads and test-time "
             "augmentation. B/A: B's median latency over A's.", "",
             "| variant | runtime | threads | accuracy A | accuracy B | median ms A | median ms B "
             "| B/A | cold start ms A | cold start ms B | peak RSS MiB A | peak RSS MiB B |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for a, b in pairs:
        lines.append(
            f"| {a['variant']} | {a['runtime']} | {a['threads']} "
            f"| {_value(a, 'accuracy', 100, 2)} | {_value(b, 'accuracy', 100, 2)} "
            f"| {_value(a, 'latency_median_ms', 1, 4)} | {_value(b, 'latency_median_ms', 1, 4)} "
            f"| {_ratio(a.get('latency_median_ms'), b.get('latency_median_ms'))} "
            f"| {_value(a, 'cold_start_ms', 1, 1)} | {_value(b, 'cold_start_ms', 1, 1)} "
            f"| {_value(a, 'peak_rss_mb', 1, 1)} | {_value(b, 'peak_rss_mb', 1, 1)} |")
    return "\n".join(lines) + "\n"


def run_compare(args: argparse.Namespace, _prepared=None) -> int:
    """``edgekit compare``: print (and with --out write) the merged table."""
    first, second = read_report(args.first), read_report(args.second)
    pairs = matched_rows(first, second)
    if not pairs:
        raise UserError("the reports share files but no runtime and thread count measured in "
                        "both: bench both with the same --threads and runtimes")
    text = to_markdown(first, second, pairs)
    print(text, end="")
    if args.out is not None:
        from edgekit.common.atomic import write_text

        write_text(args.out, text)
    return 0
