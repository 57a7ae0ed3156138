"""RUN_DIR/report/: benchmark.json (everything), benchmark.csv (one row per variant, runtime
and thread count), REPORT.md (tables, then the pictures) and the PNG plots. A report without
Keras rows (``edgekit bench`` of the converted files alone, on a device) leaves the columns
that compare with Keras out; without matplotlib (a device's runtime install) it has no
pictures."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from edge_runtime.probe import ARITHMETIC_OPERATORS
from edge_runtime.progress_line import counted
from edgekit.common.atomic import missing, removed_if_left_empty, write_json, write_text

from .device_state import describe

PLOTS = {"latency": "latency.png", "accuracy_vs_size": "accuracy_vs_size.png",
         "accuracy_vs_latency": "accuracy_vs_latency.png"}

CSV_COLUMNS = [
    "variant", "format", "precision", "runtime", "tta", "threads", "file", "bytes", "gzip_bytes",
    "accuracy", "delta_points", "agreement", "latency_median_ms", "latency_p25_ms",
    "latency_p75_ms", "latency_p90_ms",
    "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "latency_samples",
    "latency_round_min_ms", "latency_round_max_ms", "speedup_vs_keras_call",
    "speedup_vs_keras_call_min", "speedup_vs_keras_call_max", "speedup_vs_keras_predict",
    "speedup_vs_keras_predict_min", "speedup_vs_keras_predict_max", "speedup_vs_float32",
    "speedup_vs_float32_min", "speedup_vs_float32_max", "throughput_batch",
    "throughput_images_per_s", "cold_start_ms", "import_ms", "rss_before_load_mb",
    "peak_rss_mb", "error",
]


def write_report(folder: Path, report: dict) -> None:
    """All report files; each is written to a temporary name and renamed. A picture this
    report does not draw is removed, so none is left from an earlier benchmark."""
    # A full disk leaves no empty report/ behind.
    with removed_if_left_empty(missing(folder, *folder.parents)):
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "benchmark.json", report)
        write_text(folder / "benchmark.csv", to_csv(report["rows"]))
        drawn = _draw_plots(report["rows"], folder)
        for name, file in PLOTS.items():
            if name not in (drawn or ()):
                (folder / file).unlink(missing_ok=True)
        write_text(folder / "REPORT.md", to_markdown(report, drawn))


def _draw_plots(rows: list[dict], folder: Path) -> Optional[list[str]]:
    """The names of the pictures drawn into ``folder``; None where matplotlib is not installed
    (a device with the runtime alone, measuring its files)."""
    try:
        from .report_plots import draw_all
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        return None
    return draw_all(rows, folder, PLOTS)


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
    if mode == "float32" and row["variant"] in ("float32", "onnx-float32"):
        return "reference"
    if key not in row:
        return "-"
    return f"{row[key]:.1f}x [{row[key + '_min']:.1f}, {row[key + '_max']:.1f}]"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(line) + " |" for line in lines])


def _with_keras(report: dict) -> bool:
    """Whether the report measured the Keras model (not only the converted files)."""
    return report.get("keras_accuracy") is not None


def _speed_table(rows: list[dict], threads: int, keras: bool) -> list[str]:
    lines = []
    for row in rows:
        if row["threads"] != threads or row["error"] or "latency_median_ms" not in row:
            continue
        speedups = ([_speedup(row, "keras_call"), _speedup(row, "keras_predict")] if keras
                    else [_speedup(row, "float32")])
        lines.append([
            row["variant"], row["runtime"], _number(row["latency_median_ms"], 4),
            f"[{row['latency_p25_ms']:.4f}, {row['latency_p75_ms']:.4f}]",
            f"[{row['latency_round_min_ms']:.4f}, {row['latency_round_max_ms']:.4f}]",
            _number(row["latency_p90_ms"], 4), _number(row["latency_p99_ms"], 4),
            f"{row['latency_mean_ms']:.4f} ± {row['latency_std_ms']:.4f}", *speedups,
            _number(row.get("throughput_images_per_s"), 0),
            _number(row.get("cold_start_ms"), 1), _number(row.get("peak_rss_mb"), 1)])
    return _table(["variant", "runtime", "median ms", "spread [p25, p75]",
                   "round medians [min, max]", "p90 ms", "p99 ms", "mean ± std ms",
                   *(["speedup vs model(x)", "speedup vs predict"] if keras
                     else ["speedup vs its format's float32 file"]),
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
    if _with_keras(report):
        speedups = (f", {_speedup(fastest, 'keras_call')} faster than Keras `model(x)` and "
                    f"{_speedup(fastest, 'keras_predict')} faster than `model.predict`")
    elif "speedup_vs_float32" in fastest:
        speedups = f", {_speedup(fastest, 'float32')} faster than its float32 file"
    else:
        speedups = ""
    lines = [f"- Fastest at {counted(most, 'thread')}: **{fastest['variant']}** on "
             f"{fastest['runtime']}, {fastest['latency_median_ms']:.4f} ms per image (batch 1)"
             f"{speedups}{_accuracy_clause(fastest)}."]
    if sized:
        smallest = min(sized, key=lambda r: r["bytes"])
        lines.append(f"- Smallest file: **{smallest['variant']}**, {smallest['bytes']:,} bytes "
                     f"({smallest['gzip_bytes']:,} gzipped){_accuracy_clause(smallest)}.")
    return lines


def _accuracy_clause(row: dict) -> str:
    """", test accuracy A% (+D points against Keras)" for the row (without the comparison when
    Keras was not measured), or nothing when the accuracy pass did not score it."""
    if row.get("accuracy") is None:
        return ""
    against = (f" ({row['delta_points']:+.2f} points against Keras)"
               if "delta_points" in row else "")
    return f", test accuracy {100 * row['accuracy']:.2f}%{against}"


def _measured_what(report: dict) -> str:
    """The sentence saying on what accuracy was measured."""
    if _with_keras(report):
        return (f"Test accuracy on {report['test_images']:,} test images; Keras: "
                f"{100 * report['keras_accuracy']:.2f}%.")
    if report["test_images"]:
        return (f"The converted files alone (no Keras model); test accuracy on "
                f"{report['test_images']:,} labelled images of {report['settings']['data']}.")
    return ("The converted files alone (no Keras model); accuracy not measured (give --data, "
            "a folder of labelled test images).")


def _cores(env: dict) -> str:
    """"2 cores", or "4 cores, 1 usable by the benchmark" for a process pinned to fewer."""
    usable = env.get("usable_cores", env["cores"])  # reports without it: all cores usable
    return f"{env['cores']} cores" + (f", {usable} usable by the benchmark"
                                      if usable != env["cores"] else "")


def int8_dot_product_note(env: dict) -> str:
    """", int8 dot product: avx512_vnni" (or "none"); "" where the report does not say (an old
    report, or no /proc/cpuinfo)."""
    flags = env.get("int8_dot_product")
    if flags is None:
        return ""
    return f", int8 dot product: {', '.join(flags) or 'none'}"


def to_markdown(report: dict, plots: Optional[list[str]]) -> str:
    """REPORT.md: what was measured where, the tables, then the pictures ``plots`` (names in
    PLOTS; None: matplotlib was missing)."""
    env = report["environment"]
    settings = report["settings"]
    rows = report["rows"]
    keras = _with_keras(report)
    out = [f"# Benchmark of {report['run_dir']}", "",
           f"Measured on {env['cpu']} ({_cores(env)}{int8_dot_product_note(env)}, "
           f"{env['memory_gib']} GiB, "
           f"{env['os']}) at {env['started']} with `{env['command']}`.", "",
           f"{_measured_what(report)} Latency: batch 1 after warm-up, "
           f"{counted(settings['rounds'], 'interleaved round')} of about "
           f"{settings['latency_seconds']} s "
           "per subject, each subject in its own process. The spread of a latency is the "
           "interquartile range of all its timed calls; the medians of the single rounds are "
           "shown too."
           + (" Speedups are ratios against "
              + ("Keras" if keras else "the float32 file of the same format on the same "
                 "runtime") + " at the same thread count within each round (median [min, max] "
              "over rounds)." if keras or any("speedup_vs_float32" in r for r in rows) else "")
           + (" Rows named `<variant>+flip` run every image and its mirror image and average "
              "the two (test-time augmentation): two inferences per image."
              if any(r.get("tta", "none") != "none" for r in rows) else ""), ""]
    out += _headline(report) + ["", "## Accuracy and size" if report["test_images"]
                                else "## Size", ""]
    out += _size_table(rows, keras, bool(report["test_images"]))
    device = describe(report.get("device") or {})
    for threads in sorted({r["threads"] for r in rows if not r["error"]}, reverse=True):
        out += ["", f"## Speed at {counted(threads, 'thread')}", ""]
        out += _speed_table(rows, threads, keras)
        out += ["", " ".join(device)] if device else []
    out += ["", f"Cold start: loading the file{' (or model.keras)' if keras else ''} and the "
            "first inference, after the runtime's import. Peak RSS: the whole process that "
            "loaded and ran only that subject (Python and the runtime included)."]
    out += _per_class(report)
    out += _delegation(rows)
    out += _device_check(report.get("device_check") or {})
    failed = [r for r in rows if r["error"]]
    if failed:
        out += ["", "## Failed", ""]
        out += _table(["variant", "runtime", "threads", "why"],
                      [[r["variant"], r["runtime"], str(r["threads"]), r["error"]]
                       for r in failed])
    if report.get("not_measured"):
        out += ["", "## Not measured", ""]
        out += _table(["variant", "why"], [[n["variant"], n["why"]]
                                           for n in report["not_measured"]])
    out += ["", "## Environment", "", f"- Python {env['python']}, "
            + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
            f"- {env['machine']}, {env['cores']} cores", "", "## Pictures", ""]
    if plots is None:
        out.append("None: matplotlib is not installed here (pip install matplotlib).")
    else:
        out += [f"![{name.replace('_', ' ')}]({PLOTS[name]})" for name in plots]
    return "\n".join(out) + "\n"


def _likely_cause(row: dict) -> str:
    """Why a quantized TFLite file is not faster than float32 here, from what XNNPACK took."""
    xnnpack = row.get("xnnpack")
    if xnnpack is None:
        return "what XNNPACK took was not read here"
    if not xnnpack["delegated"]:
        return "XNNPACK took none of its operators (no DELEGATE node): all on the interpreter's " \
               "own kernels"
    left = sorted({name for name in xnnpack["not_delegated"] if name in ARITHMETIC_OPERATORS})
    if left:
        return f"XNNPACK left {', '.join(left)} to the interpreter's own kernels"
    return ("XNNPACK took every arithmetic operator: at this size the model's time goes to "
            "the operators it did not take and to the call itself")


def _delegation(rows: list[dict]) -> list[str]:
    """Per TFLite file: what XNNPACK took on this machine, and whether a quantized file is
    faster than its float32 file on the same runtime and threads (flagged when not)."""
    tflite = [r for r in rows if r["format"] == "tflite" and not r["error"]
              and "latency_median_ms" in r]
    if not tflite:
        return []
    threads = max(r["threads"] for r in tflite)
    floats = {r["runtime"]: r for r in tflite if r["variant"] == "float32"
              and r["threads"] == threads and r.get("tta", "none") == "none"}
    lines = []
    for row in tflite:
        if row["threads"] != threads or row.get("tta", "none") != "none":
            continue
        xnnpack = row.get("xnnpack")
        taken = (f"{xnnpack['delegated']}/{xnnpack['operators']}" if xnnpack else "not listed")
        left = ", ".join(dict.fromkeys(xnnpack["not_delegated"])) if xnnpack else "-"
        reference = floats.get(row["runtime"])
        versus, note = "-", ""
        if reference and row is not reference:
            ratio = reference["latency_median_ms"] / row["latency_median_ms"]
            versus = f"{ratio:.2f}x"
            if row["precision"] not in ("float32", "float16") and ratio < 1.0:
                note = f"**not faster than float32**: {_likely_cause(row)}"
        lines.append([row["variant"], row["runtime"], taken, left, versus, note])
    return ["", f"## What XNNPACK took ({counted(threads, 'thread')})", "",
            "Operators delegated to XNNPACK out of all, as the interpreter lists them after "
            "loading the file here, and the speed against the float32 file on the same runtime "
            "(its median latency over this one's; above 1: faster)."] + [""] + _table(
        ["variant", "runtime", "XNNPACK took", "left to the interpreter", "vs float32",
         "note"], lines)


def _device_check(verdicts: dict[str, list[dict]]) -> list[str]:
    """Where each file loads and runs, as `edgekit check` found (recorded in the manifest)."""
    if not verdicts:
        return []
    out = ["", "## Where the files run", "",
           "As `edgekit check` (run by edgekit convert) found by loading and running each file "
           "in each environment it had ready; `edgekit check RUN_DIR` prints the details.", ""]
    return out + _table(["variant", "verdicts"], [
        [name, "; ".join(f"{t['runtime']} on {t['environment']}: {t['verdict']}"
                         for t in targets)] for name, targets in verdicts.items()])


def _size_table(rows: list[dict], keras: bool, scored: bool) -> list[str]:
    """One line per (variant, runtime): file, sizes, and the accuracy where it was measured
    (against Keras where Keras was)."""
    seen, lines = set(), []
    for row in rows:
        key = (row["variant"], row["runtime"])
        if row["error"] or key in seen or (scored and "accuracy" not in row):
            continue
        seen.add(key)
        line = [row["variant"], row["runtime"], row["file"], _number(row["bytes"]),
                _number(row["gzip_bytes"])]
        if scored:
            line.append(f"{100 * row['accuracy']:.2f}%")
        if scored and keras:
            line += [f"{row['delta_points']:+.2f}", f"{100 * row['agreement']:.2f}%"]
        lines.append(line)
    return _table(["variant", "runtime", "file", "bytes", "gzip bytes"]
                  + (["test accuracy"] if scored else [])
                  + (["vs Keras (points)", "top-1 agreement with Keras"] if scored and keras
                     else []), lines)


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
