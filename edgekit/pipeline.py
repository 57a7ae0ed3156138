"""``edgekit pipeline --data ... --out RUN_DIR``: train, convert and bench in one command.

The flags become one settings object per stage (TrainConfig, ConvertSettings, BenchSettings,
each checked once, before anything runs) and the pipeline calls the stages' own functions with
them, so defaults and errors are those of the stages typed alone. A stage whose outputs are
already there and current is skipped, which makes the pipeline resumable: an interrupted
training continues from its last epoch (RUN_DIR.partial), a conversion redoes only missing or
failed variants, and the benchmark reruns when the artifacts changed. Current also means made
with what the flags given ask for: conversion and benchmark settings recorded otherwise run
those stages again; a training with other settings than the train flags ask for is refused
instead, a training being costly. ``--redo STAGE`` forces a stage and the ones after it;
``--stages`` runs some of them only (train and convert on one machine, bench later).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from edge_runtime.errors import UserError
from edge_runtime.manifest import file_sha256
from edgekit.benchmarks.settings import BenchSettings
from edgekit.convert.settings import ConvertSettings
from edgekit.train.config import TrainConfig

STAGES = ("train", "convert", "bench")


@dataclass(frozen=True)
class PipelineSettings:
    """One pipeline run: where, which stages, each stage's settings, and which of those the
    command asked for (only those are compared with what the run directory holds)."""

    out: Path
    # None: train on cifar10, and convert and bench read the data the run was trained on (a
    # run trained on another machine stores that machine's path, which --data replaces).
    data: Optional[str]
    train: TrainConfig
    convert: ConvertSettings
    bench: BenchSettings
    train_given: bool = False        # any train flag given: a run trained otherwise is refused
    convert_given: frozenset = frozenset()  # ConvertSettings fields the command set
    bench_given: frozenset = frozenset()    # BenchSettings fields the command set
    stages: tuple = STAGES
    redo: frozenset = frozenset()
    command: Optional[str] = None    # the command line that repeats it, recorded in its files
    device_check: bool = True        # convert's check of where the files run


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the pipeline's flags: its own, then every settings flag of each stage."""
    from edgekit.benchmarks.bench_cli import add_bench_settings
    from edgekit.convert.cli import add_convert_settings, add_device_check_flag
    from edgekit.train.cli import add_train_settings

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
    # The train flags in their own groups (data, model, recipe, run; --seed also seeds
    # convert). Which of them were given decides the refusal of a run trained otherwise: their
    # names are kept beside the values (set_defaults attaches data to a command).
    parser.set_defaults(train_flags=tuple(action.dest for action in add_train_settings(parser)))
    converting = parser.add_argument_group("convert (see edgekit convert --help)")
    add_convert_settings(converting, seed=False)
    add_device_check_flag(converting)
    add_bench_settings(parser.add_argument_group("bench (see edgekit bench --help)"))


def pipeline_settings(args: argparse.Namespace) -> PipelineSettings:
    """The pipeline these flags ask for; UserError for a bad flag of any stage, or for train
    flags that ask for another training than --out holds. Imports nothing heavy, so it runs
    before Keras' import, and before any stage."""
    from edgekit.benchmarks.bench_cli import bench_given
    from edgekit.common.command_line import edgekit_command_line
    from edgekit.convert.cli import convert_given
    from edgekit.train.cli import config_from_args

    stages = chosen_stages(args.stages)
    redo = stage_names("--redo", args.redo or "")
    outside = redo - set(stages)
    if outside:
        raise UserError(f"--redo {', '.join(sorted(outside, key=STAGES.index))} is not among "
                        f"--stages {args.stages}")
    converting, benchmarking = convert_given(args), bench_given(args)
    settings = PipelineSettings(
        out=args.out, data=args.data,
        train=config_from_args(args),
        convert=replace(ConvertSettings(), **converting),
        bench=replace(BenchSettings(), **benchmarking),
        train_given=any(getattr(args, flag) is not None for flag in args.train_flags),
        convert_given=frozenset(converting), bench_given=frozenset(benchmarking),
        stages=stages, redo=frozenset(redo), device_check=args.device_check,
        command=edgekit_command_line("pipeline", f"edgekit pipeline --out {args.out}"))
    if "train" not in redo:
        check_same_training(settings)
    return settings


def stage_names(flag: str, text: str) -> set[str]:
    """The stage names of a comma-separated ``text``; UserError naming ``flag`` for others."""
    names = {stage.strip() for stage in text.split(",") if stage.strip()}
    unknown = names - set(STAGES)
    if unknown:
        raise UserError(f"unknown {flag} stage {', '.join(sorted(unknown))}; choose from "
                        f"{', '.join(STAGES)}")
    return names


def chosen_stages(text: str) -> tuple[str, ...]:
    """The stages ``--stages`` asks for, in pipeline order; UserError for none or others."""
    names = stage_names("--stages", text)
    if not names:
        raise UserError(f"--stages names no stage; choose from {', '.join(STAGES)}")
    return tuple(stage for stage in STAGES if stage in names)


def check_same_training(settings: PipelineSettings) -> None:
    """Refuse to take up a run, finished (skipped) or interrupted (resumed), that was trained
    with other settings than the train flags given ask for: the run would not be what the
    command line says. Without train flags a run is taken as it is (one trained elsewhere,
    a study's added run)."""
    from edgekit.train.config import setting_differences
    from edgekit.train.finished_run import read_run_config, staging_dir

    run_dir, partial = settings.out, staging_dir(settings.out)
    if not settings.train_given:
        return
    if stage_done("train", run_dir, None) and (run_dir / "config.json").is_file():
        stored, what, fix = run_dir / "config.json", f"{run_dir} was trained", "train it again"
    elif (partial / "config.json").is_file():
        stored, what, fix = (partial / "config.json", f"the interrupted run in {partial} was "
                             "started", "start it again")
    else:
        return
    differences = setting_differences(read_run_config(stored)["settings"], settings.train)
    if differences:
        raise UserError(f"{what} with other settings than asked ({'; '.join(differences)}): "
                        f"pass --redo train to {fix} with these, or choose another --out")


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


def trained_and_converted(settings: PipelineSettings) -> bool:
    """Whether the train and convert stages of ``settings`` would both be skipped: a model,
    and every variant asked for converted from it with the convert settings given."""
    variants = [variant.name for variant in settings.convert.chosen_variants()]
    return (stage_done("train", settings.out, None) and stage_done("convert", settings.out,
                                                                   variants)
            and not made_otherwise(settings, "convert"))


# A stage's damaged JSON output reads as missing: the stage runs again and rewrites it (those
# reads ended the pipeline in a traceback).
def _manifest(run_dir: Path) -> dict | None:
    """RUN_DIR/artifacts/manifest.json, or None when it is missing or damaged."""
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
                if "error" not in v and _intact(run_dir / "artifacts", v)}
    return [name for name in wanted if name not in finished]


def _intact(artifacts: Path, entry: dict) -> bool:
    """Whether the file a manifest ``entry`` names in ``artifacts`` is the one it describes
    (never a file outside the folder: edge_runtime.manifest.variant_file)."""
    from edge_runtime.manifest import variant_file

    try:
        path = variant_file(artifacts, entry)
    except UserError:
        return False
    return path.is_file() and file_sha256(path) == entry.get("sha256")


def made_otherwise(settings: PipelineSettings, stage: str) -> list[str]:
    """The settings given for STAGE (convert or bench) that its existing output records with
    another value, one "qat-epochs 2, asked 5" each: that output is not what the command asks
    for. Settings not given are not compared, so outputs are taken as they are without."""
    if stage == "convert":
        given, asked = settings.convert_given, settings.convert
        recorded = [entry["settings"] for entry in _converted_entries(settings)
                    if isinstance(entry.get("settings"), dict)]
        compared = asked.recorded()
    else:
        given, asked = settings.bench_given, settings.bench
        stored = _benchmark_settings(settings.out)
        recorded = [] if stored is None else [stored]
        compared = asked.compared()
    differences = []
    for stored in recorded:
        for key in sorted(given & set(compared), key=list(compared).index):
            line = f"{key.replace('_', '-')} {stored.get(key, 'not recorded')}, asked " \
                   f"{compared[key]}"
            if stored.get(key) != compared[key] and line not in differences:
                differences.append(line)
    return differences


def _converted_entries(settings: PipelineSettings) -> list[dict]:
    """The manifest entries of the variants asked for that converted without error."""
    manifest = _manifest(settings.out)
    if manifest is None:
        return []
    wanted = {variant.name for variant in settings.convert.chosen_variants()}
    return [entry for entry in manifest["variants"]
            if entry["name"] in wanted and "error" not in entry]


def run_pipeline_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """``edgekit pipeline``: run the checked ``settings`` of these flags."""
    return run_pipeline(settings)


def run_pipeline(settings: PipelineSettings) -> int:
    """Run the stages that are not done; 0 if all succeeded, else the first failure's code."""
    from edgekit.common.command_line import recorded_as

    from .outcome import exit_status

    run_dir = settings.out
    first_redo = min((STAGES.index(s) for s in settings.redo), default=len(STAGES))
    variants = [variant.name for variant in settings.convert.chosen_variants()]
    started = time.perf_counter()
    status = 0
    for index, stage in enumerate(STAGES):
        if stage not in settings.stages:
            continue
        forced = index >= first_redo
        otherwise = [] if forced or stage == "train" else made_otherwise(settings, stage)
        if otherwise:  # redone, and the stages after it, as --redo would
            print(f"[{index + 1}/3] {stage}: made with other settings than asked "
                  f"({'; '.join(otherwise)}), so it runs again", flush=True)
            first_redo, forced = index, True
        tta = settings.bench.tta[-1]
        if not forced and stage_done(stage, run_dir, variants, tta):
            print(f"[{index + 1}/3] {stage}: already done, skipped (--redo {stage} to repeat)")
            continue
        what, call = _stage_call(settings, stage, forced)
        print(f"[{index + 1}/3] {stage}: {what}", flush=True)
        stage_started = time.perf_counter()
        with recorded_as(settings.command):
            code = exit_status(stage, call)
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
          f"{', '.join(outputs[stage] for stage in settings.stages)}")
    return status


def _stage_call(settings: PipelineSettings, stage: str, forced: bool):
    """What the stage is about to do, in words, and the call that does it: the stage's own
    function, with the data the pipeline was given, and for a conversion that is not forced
    only the variants an interrupted one left to do."""
    from edgekit.benchmarks.bench_cli import bench_and_report
    from edgekit.common.quiet_import import import_keras
    from edgekit.convert.cli import convert_and_report
    from edgekit.train.cli import train_and_report
    from edgekit.train.finished_run import staging_dir

    run_dir = settings.out

    def after_keras(call):
        def run() -> int:
            import_keras()
            return call()
        return run

    if stage == "train":
        resume = not forced and staging_dir(run_dir).exists()
        overwrite = forced and run_dir.exists()
        how = " (resuming)" if resume else " (replacing the old run)" if overwrite else ""
        return (f"{settings.train.arch} at width {settings.train.width:g} -> {run_dir}{how}",
                after_keras(lambda: train_and_report(settings.train, resume, overwrite)))
    if stage == "convert":
        convert = replace(settings.convert, data=settings.data)
        if not forced:  # keep what an interrupted conversion finished
            names = [v.name for v in settings.convert.chosen_variants()]
            convert = replace(convert, variants=tuple(pending_variants(run_dir, names)))
        return (f"{', '.join(convert.variants or [])} -> {run_dir}/artifacts",
                after_keras(lambda: convert_and_report(run_dir, convert,
                                                       settings.device_check)))
    bench = replace(settings.bench, data=settings.data)
    measured = " (and with tta " + ", ".join(bench.tta[1:]) + ")" if len(bench.tta) > 1 else ""
    return (f"{run_dir} -> {run_dir}/report{measured}",
            after_keras(lambda: bench_and_report(run_dir, bench, settings.command)))
