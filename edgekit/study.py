"""``edgekit study --data ... --out STUDY_DIR``: how much accuracy each byte, millisecond and
MAC buys. Trains, converts and benchmarks a grid of architectures and width multipliers (each
cell is one ``edgekit pipeline`` run directory under STUDY_DIR/cells/), then gathers every
cell's report into study.csv, study.json and STUDY.md with Pareto plots.

The grid comes from flags or a TOML file (flags win), as ``GRID_FILE_HELP`` shows and ``edgekit
study --help`` prints. A finished cell is not redone (the pipeline skips finished stages), so an
interrupted study resumes where it stopped; ``--jobs N`` trains and converts N cells at once in
separate processes, then benchmarks them one at a time. ``--executor ray`` trains and converts
them as Ray tasks over a cluster's machines instead (ray_cells.py), then benchmarks them here.
``runs`` (or ``--add-run DIR``) adds finished training runs from outside the grid, say distilled
or trained for longer on a GPU machine: they are converted and benchmarked in place and take
their place in the tables and on the fronts under their folder's name.
"""
from __future__ import annotations

import argparse
import functools
import math
import platform
import shlex
import textwrap
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, Optional

from edge_runtime.classifier import TTA_MODES

from .cell_pool import CellPool
from .pipeline import STAGES, PipelineSettings, stage_done

GRID_FILE_HELP = """\
A grid file (--grid FILE, TOML; flags given on the command line win):

    archs = ["seed_cnn", "resnet8", "ds_cnn"]
    widths = [0.25, 0.5, 1.0, 2.0]
    variants = "float32,int8,qat-int8"      # optional: default every variant
    runs = ["runs/distilled"]               # optional: finished runs trained some other way
    [train]                                 # optional: passed to edgekit train
    epochs = 60
"""
DEFAULT_ARCHS = ("seed_cnn", "resnet8", "ds_cnn")
EXECUTORS = ("local", "ray")
DEFAULT_WIDTHS = (0.25, 0.5, 1.0, 2.0)
# Train flags each cell sets for itself: the grid varies the first two, and a finished run's
# weights fit one architecture and width only.
PER_CELL_FLAGS = ("--arch", "--width", "--init-from")


@functools.lru_cache(maxsize=1)
def _train_actions() -> tuple[argparse.Action, ...]:
    """The flags of a training's settings as edgekit train registers them, so that a flag
    added there reaches the grid files with its type, choices and help."""
    from edgekit.train.cli import add_train_settings

    return tuple(add_train_settings(argparse.ArgumentParser(add_help=False)))


def train_keys() -> dict[str, argparse.Action]:
    """The keys a grid file's [train] table takes, each with its edgekit train flag (a switch,
    true or false in TOML, when its nargs is 0): every flag of a training's settings but
    PER_CELL_FLAGS."""
    return {action.option_strings[0][2:]: action for action in _train_actions()
            if action.option_strings[0] not in PER_CELL_FLAGS}


def typed(key: str, text: str, where: str):
    """The value of [train] ``key`` (or its flag) written as ``text``, by the flag's own type
    and choices; UserError naming ``where`` (the grid file's key, or the study's flag)."""
    from edge_runtime.errors import UserError

    action = train_keys()[key]
    try:
        value = action.type(text) if action.type else text
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise UserError(f"bad {where}: not a valid "
                        f"{getattr(action.type, '__name__', 'value')}") from None
    if action.choices and value not in action.choices:
        raise UserError(f"bad {where}: choose from {', '.join(action.choices)}")
    return value


def train_namespace(table: dict, **values) -> argparse.Namespace:
    """The train flags a cell's training takes, as edgekit train's parser would leave them:
    the [train] table's values (``table``, checked), then ``values`` (arch, width, data, out);
    every other flag not given (None)."""
    flags = argparse.Namespace(**{action.dest: None for action in _train_actions()})
    keys = train_keys()
    for key, text in table.items():
        setattr(flags, keys[key].dest, True if text is True else
                None if text is False else typed(key, text, f"[train] {key}"))
    for name, value in values.items():
        setattr(flags, name, value)
    return flags


@dataclass(frozen=True)
class Grid:
    """The cells of a study and the flags every cell shares."""

    archs: tuple
    widths: tuple
    variants: str | None = None
    train: dict = field(default_factory=dict)  # [train] key -> str, or bool for a switch
    runs: tuple = ()  # finished run directories from outside the grid

    def cells(self) -> list[tuple[str, float]]:
        """(arch, width) for every cell, in a stable order."""
        return [(arch, width) for arch in self.archs for width in self.widths]

    def train_argv(self) -> list[str]:
        """The [train] table as the flags of an edgekit pipeline command line (a switch only
        when true), for the command a cell's files record."""
        return [arg for key, value in self.train.items() if value is not False
                for arg in ([f"--{key}"] if value is True else [f"--{key}", value])]


class Cell(NamedTuple):
    """One row group of the study: a grid cell, or a finished run added from outside."""

    arch: str
    width: float
    run_dir: Path
    added: bool = False  # a finished run from outside the grid: converted, never trained
    pipeline: Optional[PipelineSettings] = None


def cell_name(arch: str, width: float) -> str:
    """Folder name of a cell: ``resnet8-w0.5``."""
    return f"{arch}-w{width:g}"


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the study's flags; the grid file's format goes below them in --help."""
    parser.epilog = GRID_FILE_HELP + "\n" + textwrap.fill(
        "Keys of [train]: " + ", ".join(train_keys()) + " (switches take true or false).",
        width=78, break_on_hyphens=False)  # a key split at its hyphen could not be copied
    parser.add_argument("--data", default=None,
                        help="as for edgekit pipeline: the grid's data ('cifar10' by default), "
                             "and the data added runs are converted and benchmarked on")
    parser.add_argument("--out", type=Path, required=True, help="the study directory")
    parser.add_argument("--grid", type=Path, default=None, help="a TOML grid file (format below)")
    parser.add_argument("--archs", default=None,
                        help=f"comma-separated architectures (default: {','.join(DEFAULT_ARCHS)})")
    parser.add_argument("--widths", default=None,
                        help="comma-separated width multipliers (default: "
                             f"{','.join(f'{w:g}' for w in DEFAULT_WIDTHS)})")
    parser.add_argument("--variants", default=None, help="passed to edgekit convert")
    parser.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                        help="passed to edgekit convert: each cell also gets int8-mixed "
                             "and onnx-int8-mixed within this many validation points of its "
                             "Keras model")
    budgets = parser.add_argument_group("budget (STUDY.md opens with the most accurate file "
                                        "that meets them all, or the nearest miss)")
    budgets.add_argument("--max-bytes", type=int, default=None, help="largest file, bytes")
    budgets.add_argument("--max-latency-ms", type=float, default=None,
                         help="slowest batch-1 median latency at the study's threads, ms")
    budgets.add_argument("--max-peak-rss-mb", type=float, default=None,
                         help="largest peak resident memory of the benchmark process, MiB")
    budgets.add_argument("--min-accuracy", type=float, default=None, metavar="PERCENT",
                         help="lowest test accuracy, percent")
    budgets.add_argument("--devices-report", type=Path, action="append", default=[],
                         metavar="BENCHMARK_JSON",
                         help="edgekit bench's report made on the device over the study's "
                              "files (repeatable): --max-latency-ms then holds for the "
                              "device's latencies, and STUDY.md shows them")
    parser.add_argument("--add-run", action="append", default=[], metavar="RUN_DIR",
                        help="a finished edgekit train run to include (repeatable)")
    for flag in ("epochs", "batch-size", "val-fraction"):
        # The text as typed, checked as a [train] value is (the [train] table's keys).
        parser.add_argument(f"--{flag}", default=None, help="as in the [train] table")
    parser.add_argument("--jobs", type=int, default=None,
                        help="--executor local: cells trained and converted at the same time "
                             "(their benchmarks run one at a time after; default 1)")
    cluster = parser.add_argument_group(
        "executor (where cells train and convert; the benchmarks run here, one at a time)")
    cluster.add_argument("--executor", choices=EXECUTORS, default="local",
                         help="local: child processes of this machine, --jobs at a time; ray: "
                              "Ray tasks over a cluster's machines (pip install "
                              "'edgekit[cluster]')")
    cluster.add_argument("--ray-address", default=None, metavar="ADDRESS",
                         help="the Ray cluster: 'auto' (this machine joined one with ray "
                              "start), ray://HOST:PORT (Ray Client); default: a Ray instance "
                              "of this machine's own, started for the study")
    cluster.add_argument("--cpus-per-cell", type=float, default=1.0,
                         help="CPUs each cell asks Ray for (and its TensorFlow threads) where it "
                              "gets no GPU (default 1)")
    cluster.add_argument("--gpus-per-cell", type=float, default=None,
                         help="GPUs each cell asks Ray for (default: 1 where the cluster has "
                              "GPUs, else 0)")
    cluster.add_argument("--max-retries", type=int, default=1,
                         help="times a cell is run again when its worker or machine dies "
                              "(default 1)")
    parser.add_argument("--bench-rounds", type=int, default=3,
                        help="edgekit bench --rounds per cell")
    parser.add_argument("--threads", default=None, help="edgekit bench --threads per cell")
    parser.add_argument("--tta", default=None, choices=TTA_MODES,
                        help="edgekit bench --tta per cell: flip adds every file's accuracy "
                             "and latency with test-time augmentation (rows <variant>+flip)")


def read_grid(args: argparse.Namespace) -> Grid:
    """The grid from --grid (if any) with the flags on top."""
    from edge_runtime.errors import UserError

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser as a package (the train extra)
        import tomli as tomllib

    settings: dict = {}
    if args.grid:
        try:
            settings = tomllib.loads(args.grid.read_text())
        except OSError as exc:
            raise UserError(f"{args.grid}: unreadable grid file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{args.grid}: unreadable grid file ({exc})") from None
        check_grid_keys(settings)
    archs = listed(args.archs, "--archs") if args.archs is not None else \
        tuple(settings.get("archs", DEFAULT_ARCHS))
    try:
        widths = tuple(float(w) for w in listed(args.widths, "--widths")) \
            if args.widths is not None else \
            tuple(float(w) for w in settings.get("widths", DEFAULT_WIDTHS))
    except ValueError as exc:
        raise UserError(f"bad --widths ({exc})") from None
    train = read_train_table(settings.get("train", {}))
    for key in ("epochs", "batch-size", "val-fraction"):
        text = getattr(args, key.replace("-", "_"))
        if text:
            typed(key, text, f"--{key} {text!r}")
            train[key] = text
    runs = tuple(settings.get("runs", [])) + tuple(args.add_run)
    variants = args.variants if args.variants is not None else settings.get("variants")
    return Grid(archs, widths, variants, train, runs)


def listed(text: str, flag: str) -> tuple[str, ...]:
    """A comma-separated flag value's items, spaces stripped ("seed_cnn, ds_cnn"); UserError
    when it names none (an unset shell variable, which used to mean the default grid)."""
    from edge_runtime.errors import UserError

    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise UserError(f"{flag} {text!r} names nothing")
    return items


# What each top-level key of a grid file holds: a check, and the form to name when it fails.
GRID_KEYS = {
    "archs": (lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
              'a list such as ["seed_cnn", "ds_cnn"]'),
    "widths": (lambda v: isinstance(v, list) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in v),
               "a list of numbers such as [0.5, 1.0]"),
    "variants": (lambda v: isinstance(v, str), 'a comma-separated string such as "float32,int8"'),
    "runs": (lambda v: isinstance(v, list) and all(isinstance(r, str) for r in v),
             'a list of run directories such as ["runs/distilled"]'),
    "train": (lambda v: isinstance(v, dict), "a table of edgekit train flags"),
}


def check_grid_keys(settings: dict) -> None:
    """UserError for a top-level key of a grid file that is unknown (an edgekit train flag
    written above [train] would otherwise be dropped, and the cells trained without it) or
    whose value has the wrong form."""
    from edge_runtime.errors import UserError

    unknown = sorted(set(settings) - set(GRID_KEYS))
    if unknown:
        flags = train_keys()
        in_train = [key for key in unknown if key in flags]
        hint = (f"; {', '.join(in_train)} {'goes' if len(in_train) == 1 else 'go'} in the "
                "[train] table") if in_train else ""
        known = [f"[{key}]" if key == "train" else key for key in GRID_KEYS]
        raise UserError(f"unknown keys in the grid file: {', '.join(unknown)} (known: "
                        f"{', '.join(known)}){hint}")
    for key, (valid, form) in GRID_KEYS.items():
        if key in settings and not valid(settings[key]):
            raise UserError(f"bad {key} in the grid file: {form}, got {settings[key]!r}")


def read_train_table(table) -> dict:
    """A grid file's [train] table, checked: known keys only, true/false for switches (as
    bools) and a number or string for the rest (as strings, the way a flag is typed)."""
    from edge_runtime.errors import UserError

    keys = train_keys()
    unknown = set(table) - set(keys)
    if unknown:
        raise UserError(f"unknown [train] keys in the grid file: {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(keys)})")
    train = {}
    for key, value in table.items():
        action = keys[key]
        switch = action.nargs == 0
        if switch != isinstance(value, bool) or isinstance(value, (dict, list)):
            wanted = "true or false" if switch else "a number or a string"
            raise UserError(f"bad [train] {key} = {value!r} in the grid file: {wanted}")
        train[key] = value if switch else str(value)
        if not switch:  # the error names the grid file's key
            typed(key, train[key], f"[train] {key} = {value!r} in the grid file")
    return train


def added_run(run_dir: str) -> Cell:
    """The cell of a run given by ``runs``/``--add-run``; UserError unless its training is
    finished, so that the study converts and benchmarks it, never trains it."""
    from edgekit.train.finished_run import RUN_FILES, check_finished_run, read_run_config

    # metrics.json too: the study reads a run's training facts from it.
    path = check_finished_run(run_dir, "--add-run", RUN_FILES + ("metrics.json",))
    settings = read_run_config(path / "config.json")["settings"]
    return Cell(settings["arch"], float(settings["width"]), path, added=True)


def cell_pipeline(args: argparse.Namespace, grid: Grid, cell: Cell) -> PipelineSettings:
    """The pipeline that makes ``cell``: its training (for a grid cell; an added run is taken
    as it is), the grid's variants, the study's benchmark flags, and the ``edgekit pipeline``
    command line that repeats it, which the cell's files record. UserError for a value any of
    its stages would refuse."""
    from edgekit.benchmarks.bench_cli import bench_given
    from edgekit.benchmarks.settings import BenchSettings
    from edgekit.convert.cli import convert_given
    from edgekit.convert.settings import ConvertSettings
    from edgekit.train.cli import config_from_args

    train_flags = [] if cell.added else ["--arch", cell.arch, "--width", f"{cell.width:g}",
                                         *grid.train_argv()]
    config = config_from_args(train_namespace(
        {} if cell.added else grid.train, arch=cell.arch, width=cell.width,
        data=args.data, out=str(cell.run_dir)))
    converting = convert_given(argparse.Namespace(
        variants=grid.variants, calibration_size=None, probe_size=None, seed=None,
        qat_epochs=None, qat_learning_rate=None, fold_batchnorm=None, data=args.data,
        max_drop=args.max_drop))
    benchmarking = bench_given(argparse.Namespace(
        rounds=args.bench_rounds, batch=None, test_limit=None, latency_seconds=None,
        threads=args.threads, tflite_runtime_python=None, tta=args.tta, data=args.data))
    command = ["edgekit", "pipeline", "--out", str(cell.run_dir), "--rounds",
               str(args.bench_rounds), *train_flags]
    for flag, value in (("--data", args.data), ("--variants", grid.variants),
                        ("--threads", args.threads), ("--tta", args.tta),
                        ("--max-drop", None if args.max_drop is None else f"{args.max_drop:g}")):
        command += [flag, value] if value is not None else []
    return PipelineSettings(
        out=cell.run_dir, data=args.data, train=config,
        convert=replace(ConvertSettings(), **converting),
        bench=replace(BenchSettings(), **benchmarking), train_given=not cell.added,
        convert_given=frozenset(converting), bench_given=frozenset(benchmarking),
        command=shlex.join(command))


def study_budget(args: argparse.Namespace):
    """The budget flags as a Budget; UserError for a limit that is not a positive number (an
    accuracy above 100%)."""
    from edge_runtime.errors import UserError
    from edgekit.benchmarks.study_budget import Budget
    from edgekit.benchmarks.study_devices import DEVICE_LATENCY

    for flag, value in (("--max-bytes", args.max_bytes), ("--max-latency-ms",
                        args.max_latency_ms), ("--max-peak-rss-mb", args.max_peak_rss_mb),
                        ("--min-accuracy", args.min_accuracy)):
        if value is not None and not 0 < value < math.inf:  # a NaN too
            raise UserError(f"{flag} must be a positive number, got {value}")
    if args.min_accuracy is not None and args.min_accuracy > 100:
        raise UserError(f"--min-accuracy is a percentage, at most 100, got {args.min_accuracy}")
    return Budget(args.max_bytes, args.max_latency_ms, args.max_peak_rss_mb,
                  None if args.min_accuracy is None else args.min_accuracy / 100,
                  DEVICE_LATENCY if args.devices_report else "latency_median_ms")


def study_executor(args: argparse.Namespace):
    """The Ray settings of ``--executor ray`` (None for local); UserError for flags of the
    other executor, bad counts, or Ray not installed."""
    from edge_runtime.errors import UserError

    ray_flags = [flag for flag, value, default in (
        ("--ray-address", args.ray_address, None), ("--cpus-per-cell", args.cpus_per_cell, 1.0),
        ("--gpus-per-cell", args.gpus_per_cell, None), ("--max-retries", args.max_retries, 1))
        if value != default]
    if args.executor == "local":
        if ray_flags:
            raise UserError(f"{', '.join(ray_flags)} {'is' if len(ray_flags) == 1 else 'are'} "
                            "for --executor ray")
        return None
    from .ray_cells import RaySettings, address_host_port, import_ray

    if args.jobs is not None:
        raise UserError("--jobs is for --executor local: under ray, --cpus-per-cell and "
                        "--gpus-per-cell set how many cells share a machine")
    if not 0 < args.cpus_per_cell < math.inf:
        raise UserError(f"--cpus-per-cell must be a positive number, got {args.cpus_per_cell}")
    if args.gpus_per_cell is not None and not 0 <= args.gpus_per_cell < math.inf:
        raise UserError(f"--gpus-per-cell must be 0 or more, got {args.gpus_per_cell}")
    if args.max_retries < 0:
        raise UserError(f"--max-retries must be 0 or more, got {args.max_retries}")
    if args.ray_address is not None:
        address_host_port(args.ray_address)
    import_ray()
    return RaySettings(args.ray_address, args.cpus_per_cell, args.gpus_per_cell,
                       args.max_retries)


def check_study_args(args: argparse.Namespace) -> tuple[Grid, list[Cell]]:
    """The grid and its cells, each with its pipeline; UserError for a bad grid, flag or added
    run, or for a flag value that a cell's train, convert or bench stage would refuse, so that
    a typo costs neither a training nor a study directory of failed cells. Imports nothing
    heavy, so it runs before Keras' import."""
    from edge_runtime.errors import UserError, check_counts
    from edgekit.benchmarks.study_devices import read_device_reports
    from edgekit.train.cli import ARCH_NAMES
    from edgekit.train.data import data_path

    study_budget(args)  # a bad limit or report is said before anything trains
    read_device_reports(args.devices_report)
    study_executor(args)
    grid = read_grid(args)
    unknown = [a for a in grid.archs if a not in ARCH_NAMES]
    if unknown:
        raise UserError(f"bad grid: unknown archs {unknown}; choose from "
                        f"{', '.join(ARCH_NAMES)}")
    if any(w <= 0 for w in grid.widths):
        raise UserError(f"bad grid: widths must be positive, got {list(grid.widths)}")
    check_counts(("--jobs", 1 if args.jobs is None else args.jobs),
                 ("--bench-rounds", args.bench_rounds))
    if args.data:
        data_path(args.data)  # a missing folder is one error here, not one per cell
    cells = [Cell(arch, width, args.out / "cells" / cell_name(arch, width))
             for arch, width in grid.cells()]
    cells += [added_run(run) for run in grid.runs]
    if not cells:
        raise UserError("the grid has no cells: give it archs and widths, or runs to add")
    names = [cell.run_dir.name for cell in cells]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise UserError(f"bad grid: two cells named {', '.join(clashes)}; rename the added run")
    return grid, [cell._replace(pipeline=cell_pipeline(args, grid, cell)) for cell in cells]


def trained_otherwise(cell: Cell) -> Optional[str]:
    """Why a grid cell's run does not stand for the grid any more: the settings it was trained
    with that differ from what the grid asks (its pipeline refuses to take it up), or None."""
    import json

    from edgekit.train.config import setting_differences

    config = cell.run_dir / "config.json"
    if not cell.pipeline.train_given or not config.is_file():
        return None
    differences = setting_differences(json.loads(config.read_text())["settings"],
                                      cell.pipeline.train)
    if not differences:
        return None
    return (f"trained with other settings than the grid asks ({'; '.join(differences)}): "
            "give the study another --out")


def run_study(args: argparse.Namespace, prepared: tuple[Grid, list[Cell]]) -> int:
    """Run (or resume) every cell of the checked grid, then write the study's tables and
    plots."""
    from edgekit.benchmarks.study_devices import read_device_reports
    from edgekit.benchmarks.study_report import write_study
    from edgekit.common.command_line import edgekit_command_line

    grid, cells = prepared
    names = [cell.run_dir.name for cell in cells]
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ray_settings = study_executor(args)
    jobs = 1 if args.jobs is None else args.jobs
    where = f"{jobs} at a time" if ray_settings is None else \
        f"on Ray ({ray_settings.address or 'this machine'})"
    print(f"study: {len(cells)} cells ({', '.join(names)}), {where} -> {args.out}", flush=True)

    def run_cells(chosen: list[Cell], pool, stages: tuple, what: str) -> dict[str, int]:
        def run_cell(cell: Cell) -> tuple[str, int, float]:
            started = time.perf_counter()
            code = pool.run(cell.run_dir.name, replace(cell.pipeline, stages=stages),
                            logs / f"{cell.run_dir.name}.log")
            return cell.run_dir.name, code, time.perf_counter() - started

        codes = {}
        with pool:
            # Reported as they finish: with --jobs above 1 a short cell can end before a long one.
            finished = as_completed([pool.submit(run_cell, cell) for cell in chosen])
            for done, (name, code, seconds) in enumerate((f.result() for f in finished), 1):
                print(f"[{done}/{len(chosen)}] {name}: {what if code == 0 else f'exit {code}'} "
                      f"in {seconds:.0f} s", flush=True)
                codes[name] = code
        return codes

    if ray_settings is None and jobs == 1:
        codes = run_cells(cells, CellPool(1), STAGES, "done")
    else:
        # A cell benchmarked while others train measures their load too: on the 2-core CPU
        # its latencies came out 1.7 to 1.9 times those measured alone (docs/results.md). So
        # cells train and convert N at a time (or on Ray's machines), and are benchmarked
        # here one at a time after.
        if ray_settings is None:
            codes = run_cells(cells, CellPool(jobs), ("train", "convert"),
                              "trained and converted")
        else:
            from .ray_cells import RayCells, ray_connected

            with ray_connected(ray_settings):
                codes = run_cells(cells, RayCells(ray_settings, args.out, len(cells)),
                                  ("train", "convert"), "trained and converted")
        trained = [cell for cell in cells if stage_done("train", cell.run_dir, None)
                   and not trained_otherwise(cell)]  # refused: its pipeline says why once
        print(f"study: benchmarking {len(trained)} cell(s) one at a time on this machine "
              f"({platform.node()}), with nothing else running", flush=True)
        for name, code in run_cells(trained, CellPool(1), ("bench",), "benchmarked").items():
            codes[name] = codes[name] or code
    failed = [name for name, code in codes.items() if code != 0]
    data = f" --data {args.data}" if args.data else ""
    command = edgekit_command_line("study", f"edgekit study{data} --out {args.out}")
    # A cell refused for its old settings keeps its old report; it no longer answers the grid.
    refused = {cell.run_dir.name: reason for cell in cells if cell.run_dir.name in failed
               for reason in [trained_otherwise(cell)] if reason}
    rows = write_study(args.out, [(cell.arch, cell.width, cell.run_dir) for cell in cells],
                       command, refused, study_budget(args),
                       read_device_reports(args.devices_report))
    print(f"study: {len(rows)} rows -> {args.out / 'STUDY.md'}"
          + (f"; failed cells: {', '.join(sorted(failed))}" if failed else ""))
    return 1 if failed else 0
