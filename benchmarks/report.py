"""RUN_DIR/report/: benchmark.json (everything), benchmark.csv (one row per variant, runtime
and thread count), REPORT.md (tables, then the pictures) and the PNG plots."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from train.atomic import write_json, write_text

from .report_plots import PLOTS, counted, draw_all

CSV_COLUMNS = [
    "variant", "format", "precision", "runtime", "tta", "threads", "file", "bytes", "gzip_bytes",
    "accuracy", "delta_points", "agreement", "latency_median_ms", "latency_p25_ms",
    "latency_p75_ms", "latency_p90_ms",
    "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "latency_samples",
    "latency_round_min_ms", "latency_round_max_ms", "speedup_vs_keras_call",
    "speedup_vs_keras_call_min", "speedup_vs_keras_call_max", "speedup_vs_keras_predict",
    "speedup_vs_keras_predict_min", "speedup_vs_keras_predict_max", "throughput_batch",
    "throughput_images_per_s", "cold_start_ms", "import_ms", "rss_before_load_mb",
    "peak_rss_mb", "error",
]


def write_report(folder: Path, report: dict) -> None:
    """All report files; each is written to a temporary name and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "benchmark.json", report)
    write_text(folder / "benchmark.csv", to_csv(report["rows"]))
    draw_all(report["rows"], folder)
    write_text(folder / "REPORT.md", to_markdown(report))


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV, a fixed column order (per-class accuracy stays in the JSON)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _speedup(row: dict, mode: str) -> str:
    key = f"speedup_vs_{mode}"
    if row["variant"] == "keras":
        return "reference" if row["runtime"].replace("-", "_") == mode else "-"
    if key not in row:
        return "-"
    return f"{row[key]:.1f}x [{row[key + '_min']:.1f}, {row[key + '_max']:.1f}]"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(line) + " |" for line in lines])


def _speed_table(rows: list[dict], threads: int) -> list[str]:
    lines = []
    for row in rows:
        if row["threads"] != threads or row["error"] or "latency_median_ms" not in row:
            continue
        lines.append([
            row["variant"], row["runtime"], _number(row["latency_median_ms"], 4),
            f"[{row['latency_p25_ms']:.4f}, {row['latency_p75_ms']:.4f}]",
            f"[{row['latency_round_min_ms']:.4f}, {row['latency_round_max_ms']:.4f}]",
            _number(row["latency_p90_ms"], 4), _number(row["latency_p99_ms"], 4),
            f"{row['latency_mean_ms']:.4f} ± {row['latency_std_ms']:.4f}",
            _speedup(row, "keras_call"), _speedup(row, "keras_predict"),
            _number(row.get("throughput_images_per_s"), 0),
            _number(row.get("cold_start_ms"), 1), _number(row.get("peak_rss_mb"), 1)])
    return _table(["variant", "runtime", "median ms", "spread [p25, p75]",
                   "round medians [min, max]", "p90 ms",
                   "p99 ms", "mean ± std ms", "speedup vs model(x)", "speedup vs predict",
                   "images/s at batch " + str(next((r.get("throughput_batch") for r in rows
                                                    if r.get("throughput_batch")), "-")),
                   "cold start ms", "peak RSS MiB"], lines)


def _headline(report: dict) -> list[str]:
    rows = [r for r in report["rows"] if not r["error"] and "latency_median_ms" in r]
    if not rows:
        return ["Nothing could be timed; see the errors below."]
    most = max(r["threads"] for r in rows)
    fastest = min((r for r in rows if r["threads"] == most), key=lambda r: r["latency_median_ms"])
    sized = [r for r in rows if r["variant"] != "keras" and r["bytes"]]
    lines = [f"- Fastest at {counted(most, 'thread')}: **{fastest['variant']}** on "
             f"{fastest['runtime']}, {fastest['latency_median_ms']:.4f} ms per image (batch 1), "
             f"{_speedup(fastest, 'keras_call')} faster than Keras `model(x)` and "
             f"{_speedup(fastest, 'keras_predict')} faster than `model.predict`"
             f"{_accuracy_clause(fastest)}."]
    if sized:
        smallest = min(sized, key=lambda r: r["bytes"])
        lines.append(f"- Smallest file: **{smallest['variant']}**, {smallest['bytes']:,} bytes "
                     f"({smallest['gzip_bytes']:,} gzipped){_accuracy_clause(smallest)}.")
    return lines


def _accuracy_clause(row: dict) -> str:
    """", test accuracy A% (+D points against Keras)" for the row, or nothing when the
    accuracy pass did not score it."""
    if row.get("accuracy") is None:
        return ""
    return (f", test accuracy {100 * row['accuracy']:.2f}% ({row['delta_points']:+.2f} points "
            "against Keras)")


def to_markdown(report: dict) -> str:
    """REPORT.md: what was measured where, the tables, then the pictures."""
    env = report["environment"]
    settings = report["settings"]
    rows = report["rows"]
    out = [f"# Benchmark of {report['run_dir']}", "",
           f"Measured on {env['cpu']} ({env['cores']} cores, {env['memory_gib']} GiB, "
           f"{env['os']}) at {env['started']} with `{env['command']}`.", "",
           f"Test accuracy on {report['test_images']:,} test images; Keras: "
           f"{100 * report['keras_accuracy']:.2f}%. Latency: batch 1 after warm-up, "
           f"{counted(settings['rounds'], 'interleaved round')} of about "
           f"{settings['latency_seconds']} s "
           "per subject, each subject in its own process. The spread of a latency is the "
           "interquartile range of all its timed calls; the medians of the single rounds are "
           "shown too. Speedups are ratios against Keras at the same thread count within each "
           "round (median [min, max] over rounds)."
           + (" Rows named `<variant>+flip` run every image and its mirror image and average "
              "the two (test-time augmentation): two inferences per image."
              if any(r.get("tta", "none") != "none" for r in rows) else ""), ""]
    out += _headline(report) + ["", "## Accuracy and size", ""]
    seen, lines = set(), []
    for row in rows:
        key = (row["variant"], row["runtime"])
        if row["error"] or "accuracy" not in row or key in seen:
            continue
        seen.add(key)
        lines.append([row["variant"], row["runtime"], row["file"], _number(row["bytes"]),
                      _number(row["gzip_bytes"]), f"{100 * row['accuracy']:.2f}%",
                      f"{row['delta_points']:+.2f}", f"{100 * row['agreement']:.2f}%"])
    out += _table(["variant", "runtime", "file", "bytes", "gzip bytes", "test accuracy",
                   "vs Keras (points)", "top-1 agreement with Keras"], lines)
    for threads in sorted({r["threads"] for r in rows if not r["error"]}, reverse=True):
        out += ["", f"## Speed at {counted(threads, 'thread')}", ""]
        out += _speed_table(rows, threads)
    out += ["", "Cold start: loading the file (or model.keras) and the first inference, after "
            "the runtime's import. Peak RSS: the whole process that loaded and ran only that "
            "subject (Python and the runtime included)."]
    out += _per_class(report)
    failed = [r for r in rows if r["error"]]
    if failed:
        out += ["", "## Failed", ""]
        out += _table(["variant", "runtime", "threads", "why"],
                      [[r["variant"], r["runtime"], str(r["threads"]), r["error"]]
                       for r in failed])
    out += ["", "## Environment", "", f"- Python {env['python']}, "
            + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
            f"- {env['machine']}, {env['cores']} cores", "", "## Pictures", ""]
    out += [f"![{name.replace('_', ' ')}]({file})" for name, file in PLOTS.items()]
    return "\n".join(out) + "\n"


def _per_class(report: dict) -> list[str]:
    labels = report["labels"]
    seen, columns = set(), []
    for row in report["rows"]:
        if row["error"] or "per_class" not in row or (row["file"], row["variant"]) in seen:
            continue
        seen.add((row["file"], row["variant"]))
        columns.append(row)
    if not columns:
        return []
    lines = [[label] + [_number(100 * c["per_class"][i], 1) if c["per_class"][i] is not None
                        else "-" for c in columns] for i, label in enumerate(labels)]
    return ["", "## Per-class accuracy (%)", ""] + _table(
        ["class"] + [c["variant"] for c in columns], lines)
