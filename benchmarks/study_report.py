"""Gathers a study's cells (each an ``edgekit pipeline`` run directory with report/) into
study.json, study.csv and STUDY.md with Pareto plots against the published reference points."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt

from edge_runtime.errors import UserError, damage_reason
from edge_runtime.progress_line import counted
from edgekit.common.atomic import write_json, write_text
from edgekit.train.config import TrainConfig
from edgekit.train.plots import save_figure
from edgekit.train.recipes import DEFAULT_RECIPE, RECIPES

from .bench import plain_variant
from .report import int8_dot_product_note
from .study_budget import Budget, answer_lines, budget_answer
from .study_devices import DEVICE_LATENCY, add_device_latencies, device_name
from .study_targets import check_seed_cnn_target, check_tiny_target, on_gpu, point_name

# Published points the study is measured against, each with where it is published: STUDY.md
# lists them as its reference rows and the plots draw them.
REFERENCE_NOTEBOOK = {"name": "reference notebook CNN (float)", "accuracy": 0.7502,
                      "source": "the public notebook project whose CNN seed_cnn reproduces: "
                                "its reported CIFAR-10 test accuracy"}
MLPERF_TINY = "https://github.com/mlcommons/tiny/tree/master/benchmark/training/" \
              "image_classification"
MLPERF_TINY_RESNET8 = {
    "name": "MLPerf Tiny ResNet-8 (int8)", "accuracy": 0.85, "bytes": 96_000,
    "macs": 12_500_000,
    "source": "quality target 85% top-1 on CIFAR-10: https://mlcommons.org/en/inference-tiny; "
              "about 96 KB of int8 weights: MLPerf Tiny paper (Banbury et al., 2021, "
              "arXiv:2106.07597)",
    # What the reference repository's logs report for its trained files, on its 200-image
    # performance subset of the test set (not the 10,000 images a study's rows use).
    "repository_float_accuracy": 0.900, "repository_int8_accuracy": 0.885,
    "repository_source": f"{MLPERF_TINY}: Logs/testing_log.txt (float, Keras) and "
                         "Logs/tflite_testing_log.txt (int8 TFLite), 200 images"}

COLUMNS = ["cell", "arch", "width", "params", "macs", "epochs", "train_minutes",
           "cpu_train_minutes", "trained_on", "trained_host", "default_recipe", "variant", "tta",
           "runtime", "threads", "bytes", "gzip_bytes", "accuracy", "delta_points",
           "latency_median_ms", "latency_p25_ms", "latency_p75_ms", "peak_rss_mb",
           DEVICE_LATENCY, "device", "file", "sha256", "bench_machine", "bench_host", "error"]
# The full-integer TFLite files with int8 input and output, and their markers in the plots: the
# fronts compare every way of making one (int8-mediapipe is int8's twin with other ends).
INT8_VARIANTS = {"int8": "o", "int8-per-tensor": "s", "qat-int8": "^",
                 "qat-int8-per-tensor": "v"}
PLOTS = {"macs": ("study_accuracy_vs_macs.png", "MACs per image (log scale)"),
         "bytes": ("study_accuracy_vs_size.png", "int8 file size, bytes (log scale)"),
         "latency_median_ms": ("study_accuracy_vs_latency.png",
                               "int8 batch-1 median latency, ms (log scale)")}


def model_cost(model_path: Path) -> tuple[int, int]:
    """(parameters, MACs) of a saved Keras model."""
    from edgekit.train.finished_run import load_keras_model
    from edgekit.train.macs import count_macs

    model = load_keras_model(model_path)
    return model.count_params(), count_macs(model)


def training_facts(cell: Path) -> dict:
    """How a cell's model was trained: epochs, minutes (and of them, those of runs on no GPU)
    and devices summed over the chain of runs it started from (``--init-from``), and whether
    from scratch with the default recipe."""
    epochs, seconds, cpu_seconds, devices, default_recipe = 0, 0.0, 0.0, [], True
    run, visited = cell, set()
    while run is not None and run.resolve() not in visited:
        visited.add(run.resolve())
        if not (run / "metrics.json").is_file():
            raise UserError(f"{cell.name} started from {run} (--init-from), which is no longer "
                            "a finished run: its training can't be totalled")
        config = json.loads((run / "config.json").read_text())
        try:
            metrics = json.loads((run / "metrics.json").read_text())
            run_epochs, run_seconds = metrics["epochs_trained"], metrics["train_seconds"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{run / 'metrics.json'}: damaged ({damage_reason(exc)}); training "
                            "wrote its epochs and time there, so restore it or train the run "
                            "again") from None
        epochs += run_epochs
        seconds += run_seconds
        earlier = config.get("devices", [])  # this run came before the ones already read
        if not on_gpu(", ".join(earlier)):
            cpu_seconds += run_seconds
        devices = earlier + [d for d in devices if d not in earlier]
        start = config["settings"].get("init_from")
        default_recipe = default_recipe and not start and (
            TrainConfig.from_dict(config["settings"]).recipe == RECIPES[DEFAULT_RECIPE])
        run = Path(start) if start else None
    return {"epochs": epochs, "train_minutes": round(seconds / 60, 1),
            "cpu_train_minutes": round(cpu_seconds / 60, 1),
            "trained_on": ", ".join(devices), "default_recipe": default_recipe}


def cell_rows(arch: str, width: float, cell: Path) -> list[dict]:
    """One row per variant of a cell at its largest thread count (first runtime of each).
    ``macs`` is the work per classified image: twice the model's for test-time augmentation
    rows (``<variant>+flip``), which run every image twice."""
    base = {"cell": cell.name, "arch": arch, "width": width}
    report_path = cell / "report" / "benchmark.json"
    if not report_path.is_file():
        return [{**base, "error": "no report: see logs/" + cell.name + ".log"}]
    params, macs = model_cost(cell / "model.keras")
    report = json.loads(report_path.read_text())
    env = report["environment"]
    trained_host = json.loads((cell / "config.json").read_text()).get("host")
    base.update(params=params, macs=macs, bench_machine=f"{env['cpu']}, {env['cores']} cores"
                f"{int8_dot_product_note(env)}", bench_host=env.get("host"),
                trained_host=trained_host, **training_facts(cell))
    most = max((r["threads"] for r in report["rows"] if r["threads"]), default=1)
    rows, seen = [], set()
    for row in report["rows"]:
        if row["threads"] not in (most, 0) or row["variant"] in seen or \
                row["runtime"] == "keras-predict":
            continue
        seen.add(row["variant"])
        rows.append({**base, **{key: row.get(key) for key in COLUMNS if key in row}})
        if row.get("tta", "none") != "none":
            rows[-1]["macs"] = 2 * macs
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher),
    ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _pareto_plot(rows: list[dict], tta_points: list[dict], key: str,
                 target: Path, budget: Budget) -> list[dict]:
    file_name, label = PLOTS[key]
    points = [r for r in rows if r.get(key)]
    figure, axis = plt.subplots(figsize=(7.5, 5))
    labelled = set()  # one label per cell, at its first file in this order: the rest sit close
    for variant, marker in INT8_VARIANTS.items():
        mine = [r for r in points if r["variant"] == variant]
        if mine:
            axis.scatter([r[key] for r in mine], [100 * r["accuracy"] for r in mine],
                         marker=marker, color="tab:blue", label=variant)
        for row in (r for r in mine if r["cell"] not in labelled):
            labelled.add(row["cell"])
            axis.annotate(row["cell"], (row[key], 100 * row["accuracy"]), fontsize=8,
                          textcoords="offset points", xytext=(4, 3))
    flipped = [r for r in tta_points if r.get(key)]
    if flipped:
        axis.scatter([r[key] for r in flipped], [100 * r["accuracy"] for r in flipped],
                     marker="o", facecolors="none", edgecolors="tab:green",
                     label="int8 + flip test-time augmentation (not on the front)")
    front = [points[i] for i in pareto_front([(r[key], r["accuracy"]) for r in points])]
    if front:
        axis.plot([r[key] for r in front], [100 * r["accuracy"] for r in front], "-",
                  color="tab:orange", label="Pareto front (int8)")
    axis.axhline(100 * REFERENCE_NOTEBOOK["accuracy"], color="gray", linestyle=":",
                 label=f"{REFERENCE_NOTEBOOK['name']}: 75.02%")
    axis.axhline(100 * MLPERF_TINY_RESNET8["accuracy"], color="tab:red", linestyle="--",
                 label="MLPerf Tiny quality target: 85%")
    if key in MLPERF_TINY_RESNET8:
        axis.scatter(MLPERF_TINY_RESNET8[key], 100 * MLPERF_TINY_RESNET8["accuracy"],
                     marker="*", s=160, color="tab:red", label=MLPERF_TINY_RESNET8["name"])
    # A latency budget held against a device's figures has no place on the host's axis.
    limit = {"bytes": budget.max_bytes, budget.latency_key: budget.max_latency_ms}.get(key)
    if limit is not None:
        axis.axvline(limit, color="tab:purple", linestyle="-.", label="budget")
    if budget.min_accuracy is not None:
        axis.axhline(100 * budget.min_accuracy, color="tab:purple", linestyle="-.",
                     label=None if limit is not None else "budget")
    axis.set_xscale("log")
    axis.set_xlabel(label)
    axis.set_ylabel("int8 test accuracy, %")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    save_figure(figure, target / file_name)
    return front


def write_study(study_dir: Path, cells: list[tuple[str, float, Path]], command: str,
                refused: dict[str, str] | None = None, budget: Budget = Budget(),
                device_reports: list[dict] | None = None) -> list[dict]:
    """study.json, study.csv, STUDY.md and the plots; returns the rows. ``command`` is the
    study's command line, written into STUDY.md; a cell named in ``refused`` is one error
    row with that reason instead of its measurements. With limits in ``budget`` STUDY.md
    opens with the file that meets them (study_budget.py); ``device_reports`` (benchmark
    reports made on a device over the study's files) add each file's latency there."""
    refused = refused or {}
    rows = [row for arch, width, cell in cells
            for row in ([{"cell": cell.name, "arch": arch, "width": width,
                          "error": refused[cell.name]}] if cell.name in refused
                        else cell_rows(arch, width, cell))]
    devices = [{"report": report["path"], "device": device_name(report),
                "files_matched": add_device_latencies(rows, [report])}
               for report in device_reports or []]
    int8 = [r for r in rows if r.get("variant") in INT8_VARIANTS and not r.get("error")
            and r.get("accuracy") is not None]
    # The fronts and verdicts count one inference per image, as MLPerf Tiny's figures do.
    flipped = [r for r in rows if r.get("tta") == "flip" and _plain_variant(r) in INT8_VARIANTS
               and not r.get("error") and r.get("accuracy") is not None]
    fronts = {key: _pareto_plot(int8, flipped, key, study_dir, budget) for key in PLOTS}
    targets = [check_tiny_target(fronts["bytes"]), check_seed_cnn_target(int8)]
    answer = budget_answer(rows, budget) if budget.given() else None
    opening = answer_lines(answer, budget, {cell.name: cell for _, _, cell in cells}) \
        if budget.given() else []
    opening += [f"Device latencies: {d['files_matched']} file(s) measured on {d['device']} "
                f"(`{d['report']}`)." for d in devices] + ([""] if devices else [])
    write_json(study_dir / "study.json", {"command": command, "rows": rows, "references": [
        REFERENCE_NOTEBOOK, MLPERF_TINY_RESNET8], "devices": devices,
        "budget": {**vars(budget), "answer": None if answer is None else {
            "met": answer["met"], "cell": answer["row"]["cell"],
            "variant": answer["row"]["variant"], "missed": answer["missed"]}},
        "pareto_int8": {key: [point_name(r) for r in front] for key, front in fronts.items()},
        "targets": [vars(t) for t in targets]})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(study_dir / "study.csv", buffer.getvalue())
    write_text(study_dir / "STUDY.md", _markdown(rows, fronts, targets, command, opening))
    return rows


def _markdown(rows: list[dict], fronts: dict, targets: list, command: str,
              opening: list[str]) -> str:
    machines = sorted({f"{r['bench_host']} ({r['bench_machine']})" if r.get("bench_host")
                       else r["bench_machine"] for r in rows if r.get("bench_machine")})
    trained = sorted({f"{counted(r['epochs'], 'epoch')} on {r['trained_on']}" for r in rows
                      if r.get("epochs")})
    hosts = sorted({r["trained_host"] for r in rows if r.get("trained_host")})
    if hosts:
        trained.append(f"trained on {', '.join(hosts)}")
    lines = ["# Model size / accuracy study", "",
             f"Made by `{command}`; training: {'; '.join(trained) or 'none finished'}; "
             f"benchmarked on {'; '.join(machines) or 'no machine'}.", "",
             "Each cell was trained, converted and benchmarked by `edgekit pipeline`; latencies "
             "come from each cell's own benchmark run (batch 1, all cores), so compare them "
             "across cells with the machine's noise in mind.", "", *opening,
             "| cell | params | MACs | variant | bytes | test accuracy | vs Keras (points) | "
             "median ms |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.get("error"):
            lines.append(f"| {row['cell']} | | | {row.get('variant', '')} | | failed: "
                         f"{row['error']} | | |")
            continue
        lines.append(f"| {row['cell']} | {row['params']:,} | {row['macs']:,} | "
                     f"{row['variant']} | {row['bytes']:,} | {100 * row['accuracy']:.2f}% | "
                     f"{row['delta_points']:+.2f} | {row['latency_median_ms']:.4f} |")
    lines += _tta_table(rows)
    lines += _reference_rows()
    lines += ["", "## Targets", ""]
    lines += [f"- {t.target}: **{'met' if t.met else 'not met'}** ({t.evidence})"
              for t in targets]
    lines += ["", "## Pareto fronts (int8 files)", ""]
    for key, front in fronts.items():
        lines.append(f"- against {PLOTS[key][1].split(' (')[0]}: "
                     + (", ".join(f"{point_name(r)}: {100 * r['accuracy']:.2f}%" for r in front)
                        or "no int8 results"))
    lines += ["", "## Pictures", ""]
    lines += [f"![{name}]({file})" for name, (file, _) in PLOTS.items()]
    return "\n".join(lines) + "\n"


def _reference_rows() -> list[str]:
    """The published points, each labelled with its source."""
    notebook, tiny = REFERENCE_NOTEBOOK, MLPERF_TINY_RESNET8
    return ["", "## Reference points", "",
            "| reference | test accuracy | size | MACs | source |", "|---|---|---|---|---|",
            f"| {notebook['name']} | {100 * notebook['accuracy']:.2f}% | | | "
            f"{notebook['source']} |",
            f"| MLPerf Tiny ResNet-8, quality target | {100 * tiny['accuracy']:.0f}% (top-1) | "
            f"about {tiny['bytes'] // 1000} KB of int8 weights | {tiny['macs'] / 1e6:.1f}M | "
            f"{tiny['source']} |",
            f"| MLPerf Tiny ResNet-8, its trained float and int8 files | "
            f"{100 * tiny['repository_float_accuracy']:.1f}% float, "
            f"{100 * tiny['repository_int8_accuracy']:.1f}% int8 (200 images) | | | "
            f"{tiny['repository_source']} |"]


def _plain_variant(row: dict) -> str:
    """A study row's manifest variant (benchmarks older than --tta wrote no tta field)."""
    return plain_variant(row.get("variant", ""), row.get("tta", "none"))


def _tta_table(rows: list[dict]) -> list[str]:
    """What flip test-time augmentation gains and costs per file, where it was measured."""
    plain = {(r["cell"], r["variant"]): r for r in rows
             if not r.get("error") and r.get("tta", "none") == "none"}
    lines = []
    for row in rows:
        base = plain.get((row["cell"], _plain_variant(row)))
        if row.get("error") or row.get("tta") != "flip" or base is None:
            continue
        lines.append(f"| {row['cell']} | {base['variant']} | {100 * base['accuracy']:.2f}% | "
                     f"{100 * row['accuracy']:.2f}% | "
                     f"{100 * (row['accuracy'] - base['accuracy']):+.2f} | "
                     f"{base['latency_median_ms']:.4f} | {row['latency_median_ms']:.4f} "
                     f"({row['latency_median_ms'] / base['latency_median_ms']:.2f}x) |")
    if not lines:
        return []
    return ["", "## Test-time augmentation", "",
            "Each file also run with every test image averaged with its mirror image "
            "(`--tta flip`): two inferences per image, the same bytes. These rows are drawn "
            "hollow in the pictures and count in no front or target verdict, which take one "
            "inference per image, as MLPerf Tiny's figures do.", "",
            "| cell | variant | accuracy | with flip | gain (points) | median ms | with flip |",
            "|---|---|---|---|---|---|---|"] + lines
