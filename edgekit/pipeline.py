"""``edgekit pipeline --data ... --out RUN_DIR``: train, convert and bench in one command.

Each stage runs through the same command as when typed alone, so defaults and errors are the
same. A stage whose outputs are already there and current is skipped, which makes the pipeline
resumable: an interrupted training continues from its last epoch (RUN_DIR.partial), a
conversion redoes only missing or failed variants, and the benchmark reruns when the artifacts
changed. Current also means made with what the flags given ask for: conversion and benchmark
flags recorded otherwise run those stages again; train flags that differ from the run's are
refused instead, a training being costly. ``--redo STAGE`` forces a stage and the ones after it;
``--stages`` runs some of them only (train and convert on one machine, bench later).
"""
from __future__ import annotations

import argparse
import functools
import json
import shlex
import time
from pathlib import Path

from edge_runtime.manifest import file_sha256
from edgekit.train.config import TrainConfig

STAGES = ("train", "convert", "bench")
# Flags the pipeline decides itself rather than passing on: where the data and the run are,
# and whether training resumes or starts over (from what RUN_DIR holds and --redo).
PIPELINE_OWNED = ("--data", "--out", "--resume", "--overwrite")


@functools.lru_cache(maxsize=1)
def passed_flags() -> dict[str, tuple[argparse.Action, ...]]:
    """Each stage's optional flags that the pipeline passes on: every one but PIPELINE_OWNED,
    read from the stage's own parser, so that a flag added to a stage reaches the pipeline
    (and a study's [train] table) with its type, choices and help."""
    from edgekit.benchmarks.bench_cli import add_bench_arguments
    from edgekit.convert.cli import add_convert_arguments
    from edgekit.train.cli import add_train_arguments

    flags = {}
    for stage, add_arguments in zip(STAGES, (add_train_arguments, add_convert_arguments,
                                             add_bench_arguments)):
        parser = argparse.ArgumentParser(add_help=False)
        add_arguments(parser)
        flags[stage] = tuple(action for action in parser._actions if action.option_strings
                             and action.option_strings[0] not in PIPELINE_OWNED)
    return flags


def _takers(flag: str) -> list[str]:
    return [stage for stage, actions in passed_flags().items()
            if any(action.option_strings[0] == flag for action in actions)]


def as_typed(convert):
    """An argparse type that refuses what CONVERT refuses (say, ``int``) but keeps the text:
    the stage gets the flag as the user typed it (``1e-3``, not ``0.001``)."""
    def check(text: str) -> str:
        convert(text)
        return text

    check.__name__ = convert.__name__  # argparse's message: "invalid int value: 'x'"
    return check


def _pass_through(action: argparse.Action) -> dict:
    """add_argument keywords for the pipeline's copy of a stage's flag: no default of its own
    (an unset flag is not passed, so the stage's default holds), the stage's type check and
    choices (a typo is refused before training), and the stage's help naming who takes it."""
    flag = action.option_strings[0]
    shown = action.default is not None and action.default is not False  # 0 is shown
    default = f" (default: {action.default})" if shown else ""
    help_text = f"{action.help}{default}; passed to edgekit {' and '.join(_takers(flag))}"
    if action.nargs == 0:  # a switch: passed bare when given
        return {"action": "store_true", "help": help_text}
    return {"default": None, "type": action.type and as_typed(action.type),
            "choices": action.choices, "metavar": action.metavar, "help": help_text}


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the pipeline's flags: its own, then every flag of each stage, passed through."""
    parser.add_argument("--data", default=None,
                        help="as for edgekit train: 'cifar10' (the default), an image-folder "
                             "tree or the CIFAR-10 python archive; convert and bench read it "
                             "too, and without it the data the run was trained on")
    parser.add_argument("--out", type=Path, required=True, help="the run directory")
    parser.add_argument("--redo", default=None,
                        help=f"comma-separated stages to redo even if done ({', '.join(STAGES)}); "
                             "later stages are redone too")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated stages to run, the others neither run nor checked: "
                             "say train,convert on a training machine and bench later, when "
                             "nothing else runs beside it")
    registered = set()
    for stage, actions in passed_flags().items():
        group = parser.add_argument_group(f"{stage} (see edgekit {stage} --help)")
        for action in actions:
            flag = action.option_strings[0]
            if flag not in registered:  # --seed: one flag for train and convert
                group.add_argument(flag, **_pass_through(action))
                registered.add(flag)


def flag_argv(flag: str, value) -> list[str]:
    """One flag as argv: a switch bare when on and absent when off, an unset flag (None)
    absent, any other value (the text as typed) after its flag."""
    if value is True:
        return [flag]
    if value is None or value is False:
        return []
    return [flag, value]


def passed_argv(args: argparse.Namespace, stage: str) -> list[str]:
    """The flags given to the pipeline that STAGE takes, as that stage's argv."""
    argv = []
    for action in passed_flags()[stage]:
        flag = action.option_strings[0]
        argv += flag_argv(flag, getattr(args, flag.lstrip("-").replace("-", "_")))
    return argv


def stage_done(stage: str, run_dir: Path, variants: list[str] | None,
               tta: str | None = None) -> bool:
    """Whether a stage's outputs exist and are current (for bench: newer than the manifest,
    and measured with test-time augmentation ``tta`` too when one is asked for)."""
    manifest_path = run_dir / "artifacts" / "manifest.json"
    benchmark = run_dir / "report" / "benchmark.json"
    if stage == "train":
        return (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
    if stage == "convert":
        return not pending_variants(run_dir, variants)
    bench_settings = _benchmark_settings(run_dir)
    if bench_settings is None or not (manifest_path.is_file() and
                                      benchmark.stat().st_mtime >= manifest_path.stat().st_mtime):
        return False
    measured = bench_settings.get("tta", ["none"])
    return tta in (None, "none") or tta in measured


# A stage's damaged JSON output reads as missing: the stage runs again and rewrites it (those
# reads ended the pipeline in a traceback).
def _manifest(run_dir: Path) -> dict | None:
    """RUN_DIR/artifacts/manifest.json, or None when it is missing or damaged."""
    from edge_runtime.errors import UserError
    from edge_runtime.manifest import read_manifest

    path = run_dir / "artifacts" / "manifest.json"
    try:
        return read_manifest(path) if path.is_file() else None
    except UserError:
        return None


def _benchmark_settings(run_dir: Path) -> dict | None:
    """The settings RUN_DIR/report/benchmark.json records, or None when it is missing or
    damaged."""
    try:
        settings = json.loads((run_dir / "report" / "benchmark.json").read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return settings if isinstance(settings, dict) else None


def pending_variants(run_dir: Path, variants: list[str] | None) -> list[str]:
    """The requested variants (None: all) that RUN_DIR/artifacts lacks for its current
    model.keras, that failed there, or whose file is gone or no longer the one converted (its
    sha256 differs from the manifest's): what an interrupted conversion has left to do."""
    from edgekit.convert.variants import VARIANTS

    wanted = variants if variants is not None else list(VARIANTS)
    manifest = _manifest(run_dir)
    if manifest is None or manifest.get("source_model", {}).get("sha256") != \
            file_sha256(run_dir / "model.keras"):
        return wanted
    finished = {v["name"] for v in manifest["variants"]
                if "error" not in v and _intact(run_dir / "artifacts" / v["file"], v)}
    return [name for name in wanted if name not in finished]


def _intact(path: Path, entry: dict) -> bool:
    """Whether ``path`` is the file a manifest ``entry`` describes."""
    return path.is_file() and file_sha256(path) == entry.get("sha256")


# The flags of convert and bench whose values their outputs record, and the key of each in
# the recorded ``settings`` (manifest.json's entries, benchmark.json).
RECORDED_KEYS = {
    "convert": {"--calibration-size": "calibration_size_asked",
                "--probe-size": "probe_size_asked", "--seed": "seed",
                "--qat-epochs": "qat_epochs", "--qat-learning-rate": "qat_learning_rate",
                "--no-fold-batchnorm": "fold_batchnorm"},
    "bench": {"--threads": "threads", "--rounds": "rounds",
              "--latency-seconds": "latency_seconds", "--batch": "throughput_batch",
              "--test-limit": "test_limit", "--tflite-runtime-python": "runtime_pythons"},
}


def _asked_settings(stage: str, asked: argparse.Namespace) -> dict:
    """What STAGE would record for its parsed flags ``asked``, under RECORDED_KEYS' keys."""
    from edgekit.benchmarks.bench import recorded_settings
    from edgekit.benchmarks.bench_cli import bench_settings

    if stage == "bench":
        return recorded_settings(bench_settings(asked))
    return {"calibration_size_asked": asked.calibration_size,
            "probe_size_asked": asked.probe_size, "seed": asked.seed,
            "qat_epochs": asked.qat_epochs, "qat_learning_rate": asked.qat_learning_rate,
            "fold_batchnorm": not asked.no_fold_batchnorm}


def _recorded_settings(args: argparse.Namespace, stage: str) -> list[dict]:
    """The settings STAGE's existing output was made with: the benchmark's, or those of each
    requested variant already converted (older manifests record one set for all)."""
    from edgekit.convert.variants import parse_variants

    if stage == "bench":
        settings = _benchmark_settings(args.out)
        return [] if settings is None else [settings]
    manifest = _manifest(args.out)
    if manifest is None:
        return []
    wanted = {v.name for v in parse_variants(args.variants)}
    return [entry.get("settings", manifest.get("settings", {})) for entry in manifest["variants"]
            if entry["name"] in wanted and "error" not in entry]


def made_otherwise(args: argparse.Namespace, stage: str) -> list[str]:
    """The flags given for STAGE (convert or bench) that its existing output records with
    another value, one "qat-epochs 2, asked 5" each: that output is not what the command line
    asks for. Flags not given are not compared, so outputs are taken as they are without."""
    from .cli import build_parser

    given = [word for word in passed_argv(args, stage) if word in RECORDED_KEYS[stage]]
    if not given:
        return []
    asked = _asked_settings(stage, build_parser().parse_args(stage_commands(args)[stage]))
    differences = []
    for stored in _recorded_settings(args, stage):
        for flag in given:
            key = RECORDED_KEYS[stage][flag]
            was = stored.get(key, "not recorded")
            line = f"{flag[2:]} {was}, asked {asked[key]}"
            if was != asked[key] and line not in differences:
                differences.append(line)
    return differences


def stage_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each stage's ``edgekit`` argv, as the pipeline runs it."""
    run_dir = args.out
    # convert and bench get --data only when given: a run trained on another machine (a GPU
    # box) stores that machine's data path, which --data replaces; without it they read the
    # data the run was trained on, as on their own.
    data = ["--data", args.data] if args.data else []
    return {
        "train": ["train", "--data", args.data or "cifar10", "--out", str(run_dir),
                  *passed_argv(args, "train")],
        "convert": ["convert", str(run_dir), *data, *passed_argv(args, "convert")],
        "bench": ["bench", str(run_dir), *data, *passed_argv(args, "bench")],
    }


def check_later_stages(args: argparse.Namespace) -> None:
    """Refuse bad conversion and benchmark flags before training: a typo in them must not
    cost the run (train checks its own flags before its first epoch)."""
    from edgekit.benchmarks.bench_cli import check_bench_args
    from edgekit.convert.cli import check_convert_args

    from .cli import build_parser

    commands = stage_commands(args)
    parser = build_parser()
    check_convert_args(parser.parse_args(commands["convert"]))
    check_bench_args(parser.parse_args(commands["bench"]))


def check_same_training(args: argparse.Namespace, asked: TrainConfig) -> None:
    """Refuse to take up a run, finished (skipped) or interrupted (resumed), that was trained
    with other settings than the train flags given ask for: the run would not be what the
    command line says. Without train flags a run is taken as it is (one trained elsewhere,
    a study's added run)."""
    from edge_runtime.errors import UserError
    from edgekit.train.config import setting_differences
    from edgekit.train.finished_run import read_run_config, staging_dir

    run_dir, partial = args.out, staging_dir(args.out)
    if not passed_argv(args, "train"):
        return
    if stage_done("train", run_dir, None) and (run_dir / "config.json").is_file():
        stored, what, fix = run_dir / "config.json", f"{run_dir} was trained", "train it again"
    elif (partial / "config.json").is_file():
        stored, what, fix = (partial / "config.json", f"the interrupted run in {partial} was "
                             "started", "start it again")
    else:
        return
    differences = setting_differences(read_run_config(stored)["settings"], asked)
    if differences:
        raise UserError(f"{what} with other settings than asked ({'; '.join(differences)}): "
                        f"pass --redo train to {fix} with these, or choose another --out")


def check_stage_flags(args: argparse.Namespace) -> TrainConfig:
    """The training the pipeline's train flags ask for; UserError for a flag value that any
    stage would refuse. Imports nothing heavy."""
    from edgekit.train.cli import config_from_args

    from .cli import build_parser

    check_later_stages(args)
    return config_from_args(build_parser().parse_args(stage_commands(args)["train"]))


def check_pipeline_args(args: argparse.Namespace) -> set[str]:
    """The stages to redo; UserError for a bad flag of any stage, or for train flags that ask
    for another training than --out holds. Imports nothing heavy, so it runs before Keras'
    import, and before any stage."""
    from edge_runtime.errors import UserError

    redo = _stage_names("--redo", args.redo or "")
    outside = redo - set(chosen_stages(args))
    if outside:
        raise UserError(f"--redo {', '.join(sorted(outside, key=STAGES.index))} is not among "
                        f"--stages {args.stages}")
    asked = check_stage_flags(args)
    if "train" not in redo:
        check_same_training(args, asked)
    return redo


def _stage_names(flag: str, text: str) -> set[str]:
    """The stage names of a comma-separated ``text``; UserError naming ``flag`` for others."""
    from edge_runtime.errors import UserError

    names = {stage.strip() for stage in text.split(",") if stage.strip()}
    unknown = names - set(STAGES)
    if unknown:
        raise UserError(f"unknown {flag} stage {', '.join(sorted(unknown))}; choose from "
                        f"{', '.join(STAGES)}")
    return names


def chosen_stages(args: argparse.Namespace) -> tuple[str, ...]:
    """The stages ``--stages`` asks for, in pipeline order; UserError for none or others."""
    from edge_runtime.errors import UserError

    names = _stage_names("--stages", args.stages)
    if not names:
        raise UserError(f"--stages names no stage; choose from {', '.join(STAGES)}")
    return tuple(stage for stage in STAGES if stage in names)


def run_pipeline(args: argparse.Namespace) -> int:
    """Run the stages that are not done; 0 if all succeeded, else the first failure's code."""
    from edgekit.convert.variants import parse_variants
    from edgekit.train.finished_run import staging_dir

    from .cli import run_command

    redo = check_pipeline_args(args)
    stages = chosen_stages(args)
    commands = stage_commands(args)
    first_redo = min((STAGES.index(s) for s in redo), default=len(STAGES))
    run_dir = args.out
    # Names as convert reads them (spaces stripped), so a finished variant is recognised.
    variants = None if args.variants is None else [v.name for v in parse_variants(args.variants)]
    started = time.perf_counter()
    status = 0
    for index, stage in enumerate(STAGES):
        if stage not in stages:
            continue
        forced = index >= first_redo
        otherwise = [] if forced or stage == "train" else made_otherwise(args, stage)
        if otherwise:  # redone, and the stages after it, as --redo would
            print(f"[{index + 1}/3] {stage}: made with other settings than asked "
                  f"({'; '.join(otherwise)}), so it runs again", flush=True)
            first_redo, forced = index, True
        if not forced and stage_done(stage, run_dir, variants, args.tta):
            print(f"[{index + 1}/3] {stage}: already done, skipped (--redo {stage} to repeat)")
            continue
        argv = commands[stage]
        if stage == "convert" and not forced:  # keep what an interrupted conversion finished
            pending = argparse.Namespace(**{**vars(args), "variants": ",".join(
                pending_variants(run_dir, variants))})
            argv = stage_commands(pending)["convert"]
        if stage == "train":
            partial = staging_dir(run_dir)
            if forced and run_dir.exists():
                argv = argv + ["--overwrite"]
            elif partial.exists():
                argv = argv + ["--resume"]
        print(f"[{index + 1}/3] {stage}: edgekit {shlex.join(argv)}", flush=True)
        stage_started = time.perf_counter()
        code = run_command(argv)
        print(f"[{index + 1}/3] {stage}: {'done' if code == 0 else f'exit {code}'} in "
              f"{time.perf_counter() - stage_started:.0f} s", flush=True)
        if code != 0:
            status = status or code
            if stage == "train":
                return code  # nothing to convert
    minutes = (time.perf_counter() - started) / 60
    outcome = "finished" if status == 0 else f"finished with a failed stage (exit {status})"
    outputs = {"train": f"{run_dir}/ (model.keras, metrics and pictures)",
               "convert": f"{run_dir}/artifacts/ (variants, manifest.json)",
               "bench": f"{run_dir}/report/ (REPORT.md, benchmark.json/.csv, plots)"}
    print(f"pipeline {outcome} in {minutes:.1f} min: "
          f"{', '.join(outputs[stage] for stage in stages)}")
    return status
