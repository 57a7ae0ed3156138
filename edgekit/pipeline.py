"""``edgekit pipeline --data ... --out RUN_DIR``: train, convert and bench in one command.

Each stage runs through the same command as when typed alone, so defaults and errors are the
same. A stage whose outputs are already there and current is skipped, which makes the pipeline
resumable: an interrupted training continues from its last epoch (RUN_DIR.partial), a
conversion redoes only missing or failed variants, and the benchmark reruns when the artifacts
changed. ``--redo STAGE`` forces a stage and the ones after it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from edge_runtime.classifier import TTA_MODES

STAGES = ("train", "convert", "bench")
TRAIN_FLAGS = ("--arch", "--recipe", "--split", "--epochs", "--batch-size", "--width",
               "--val-fraction", "--seed", "--lr", "--weight-decay", "--label-smoothing",
               "--crop-pad", "--cutout", "--mixup", "--sam", "--optimizer", "--teacher",
               "--distill-weight", "--distill-temperature", "--init-from")
CONVERT_FLAGS = ("--variants", "--calibration-size", "--qat-epochs")
BENCH_FLAGS = ("--threads", "--rounds", "--test-limit", "--tta")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the pipeline's flags (a subset of each stage's, passed through)."""
    parser.add_argument("--data", default=None,
                        help="as for edgekit train: 'cifar10' (the default), an image-folder "
                             "tree or the CIFAR-10 python archive; convert and bench read it "
                             "too, and without it the data the run was trained on")
    parser.add_argument("--out", type=Path, required=True, help="the run directory")
    parser.add_argument("--redo", default=None,
                        help=f"comma-separated stages to redo even if done ({', '.join(STAGES)}); "
                             "later stages are redone too")
    train = parser.add_argument_group("train (see edgekit train --help)")
    for flag in TRAIN_FLAGS:
        train.add_argument(flag, default=None, help="passed to edgekit train")
    convert = parser.add_argument_group("convert (see edgekit convert --help)")
    for flag in CONVERT_FLAGS:
        convert.add_argument(flag, default=None, help="passed to edgekit convert")
    bench = parser.add_argument_group("bench (see edgekit bench --help)")
    for flag in BENCH_FLAGS:
        # --tta is checked here, not after a training: a typo must not cost the run.
        choices = TTA_MODES if flag == "--tta" else None
        bench.add_argument(flag, default=None, choices=choices, help="passed to edgekit bench")


def _passed(args: argparse.Namespace, flags: tuple[str, ...]) -> list[str]:
    argv = []
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            argv += [flag, str(value)]
    return argv


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    if not (benchmark.is_file() and manifest_path.is_file() and
            benchmark.stat().st_mtime >= manifest_path.stat().st_mtime):
        return False
    measured = json.loads(benchmark.read_text())["settings"].get("tta", ["none"])
    return tta in (None, "none") or tta in measured


def pending_variants(run_dir: Path, variants: list[str] | None) -> list[str]:
    """The requested variants (None: all) that RUN_DIR/artifacts lacks for its current
    model.keras, or that failed there: what an interrupted conversion has left to do."""
    from convert.variants import VARIANTS

    wanted = variants if variants is not None else list(VARIANTS)
    manifest_path = run_dir / "artifacts" / "manifest.json"
    if not manifest_path.is_file():
        return wanted
    manifest = json.loads(manifest_path.read_text())
    if manifest["source_model"]["sha256"] != _sha256(run_dir / "model.keras"):
        return wanted
    finished = {v["name"] for v in manifest["variants"] if "error" not in v}
    return [name for name in wanted if name not in finished]


def stage_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each stage's ``edgekit`` argv, as the pipeline runs it."""
    run_dir = args.out
    # convert and bench get --data only when given: a run trained on another machine (a GPU
    # box) stores that machine's data path, which --data replaces; without it they read the
    # data the run was trained on, as on their own.
    data = ["--data", args.data] if args.data else []
    return {
        "train": ["train", "--data", args.data or "cifar10", "--out", str(run_dir),
                  *_passed(args, TRAIN_FLAGS)],
        "convert": ["convert", str(run_dir), *data, *_passed(args, CONVERT_FLAGS)],
        "bench": ["bench", str(run_dir), *data, *_passed(args, BENCH_FLAGS)],
    }


def check_later_stages(args: argparse.Namespace) -> None:
    """Refuse bad conversion and benchmark flags before training: a typo in them must not
    cost the run (train checks its own flags before its first epoch)."""
    from benchmarks.bench_cli import check_bench_args
    from convert.cli import check_convert_args

    from .cli import build_parser

    commands = stage_commands(args)
    parser = build_parser()
    check_convert_args(parser.parse_args(commands["convert"]))
    check_bench_args(parser.parse_args(commands["bench"]))


def run_pipeline(args: argparse.Namespace) -> int:
    """Run the stages that are not done; 0 if all succeeded, else the first failure's code."""
    from convert.variants import parse_variants
    from edge_runtime.errors import UserError

    from .cli import run_command

    redo = set(args.redo.split(",")) if args.redo else set()
    unknown = redo - set(STAGES)
    if unknown:
        raise UserError(f"unknown --redo stage {', '.join(sorted(unknown))}; choose from "
                        f"{', '.join(STAGES)}")
    check_later_stages(args)
    first_redo = min((STAGES.index(s) for s in redo), default=len(STAGES))
    run_dir = args.out
    # Names as convert reads them (spaces stripped), so a finished variant is recognised.
    variants = [v.name for v in parse_variants(args.variants)] if args.variants else None
    commands = stage_commands(args)
    started = time.perf_counter()
    status = 0
    for index, stage in enumerate(STAGES):
        forced = index >= first_redo
        if not forced and stage_done(stage, run_dir, variants, args.tta):
            print(f"[{index + 1}/3] {stage}: already done, skipped (--redo {stage} to repeat)")
            continue
        argv = commands[stage]
        if stage == "convert" and not forced:  # keep what an interrupted conversion finished
            pending = argparse.Namespace(**{**vars(args), "variants": ",".join(
                pending_variants(run_dir, variants))})
            argv = stage_commands(pending)["convert"]
        if stage == "train":
            partial = run_dir.with_name(run_dir.name + ".partial")
            if forced and run_dir.exists():
                argv = argv + ["--overwrite"]
            elif partial.exists():
                argv = argv + ["--resume"]
        print(f"[{index + 1}/3] {stage}: edgekit {' '.join(argv)}", flush=True)
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
    print(f"pipeline {outcome} in {minutes:.1f} min: {run_dir}/ (model.keras, metrics and "
          f"pictures), {run_dir}/artifacts/ (variants, manifest.json), {run_dir}/report/ "
          "(REPORT.md, benchmark.json/.csv, plots)")
    return status
