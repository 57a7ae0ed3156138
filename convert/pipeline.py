"""``edgekit convert RUN_DIR``: every requested variant into RUN_DIR/artifacts, each verified
against the Keras model and described in manifest.json."""
from __future__ import annotations

import multiprocessing
import os
import platform
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_runtime.errors import printable
from edge_runtime.manifest import file_sha256
from edge_runtime.preprocess import NORM_MEAN, NORM_STD, scale_pixels
from edgekit.common.command_line import edgekit_command_line

from .layer_files import write_layer_report, write_quantization_summary
from .run_dir import load_run
from .samples import draw_samples
from .settings import ConvertSettings
from .variants import Variant
from .verify import accuracy_warning, compare, predict_file

MANIFEST = "manifest.json"
WORK_PREFIX = ".work-"  # a conversion's temporary folder in artifacts/
MANIFEST_VERSION = 1


def conversion_versions() -> dict:
    """Versions of every library that shapes an artifact."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "tf2onnx", "onnx", "onnxruntime",
                    "ai-edge-litert"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _build_in_child(run_dir: Path, variant: Variant, calibration_file: Path,
                    target: Path, metadata: dict, settings: ConvertSettings, label: str) -> dict:
    """Run ``worker.build_variant`` in a fresh spawned process and return its facts; its
    failure comes back as BuildFailed. The child never outlives this call: Ctrl-C or SIGTERM
    here kill it, and it ends itself when this process dies (worker.variant_child)."""
    from .worker import BuildFailed, variant_child

    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=variant_child, args=(
        sending, os.getpid(), str(run_dir), variant.name, str(calibration_file), str(target),
        metadata, settings, label))
    child.start()
    sending.close()  # the child holds the only writing end: its death is an EOF here
    try:
        try:
            outcome = receiving.recv()
        except EOFError:
            child.join()
            raise BuildFailed(f"the conversion process ended with exit status "
                              f"{child.exitcode}") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiving.close()
    if isinstance(outcome, BuildFailed):
        raise outcome
    return outcome


def _one_line(exc: BaseException) -> str:
    from .worker import BuildFailed

    text = str(exc).strip().splitlines()
    last = text[-1] if text else ""
    return last if isinstance(exc, BuildFailed) else f"{type(exc).__name__}: {last}"


def convert_run(run_dir: Path, settings: ConvertSettings) -> tuple[dict, list[str]]:
    """Build, verify and publish the variants ``settings`` asks for; returns the manifest and
    the failed names."""
    from edgekit.common.atomic import missing, removed_if_left_empty, write_json

    variants = settings.chosen_variants()
    run = load_run(run_dir)
    samples = draw_samples(run, settings.calibration_size, settings.probe_size, settings.seed,
                           settings.data)
    reference = np.asarray(run.model.predict(scale_pixels(samples.probe), batch_size=250,
                                             verbose=0))
    artifacts = Path(run_dir) / "artifacts"
    # A failure (a full disk, Ctrl-C) leaves no empty artifacts/ or logs/ of this command.
    with removed_if_left_empty(missing(artifacts, artifacts / "logs")):
        artifacts.mkdir(exist_ok=True)
        # Work folders of conversions killed before they could clean up (SIGKILL, a power
        # cut): the commands convert under the run's folder lock, so none is in use now.
        for stale in artifacts.glob(f"{WORK_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        metadata = {"model_name": run.model.name, "labels": run.class_names,
                    "image_size": run.image_size, "source_model_sha256": run.model_sha256}
        entries = _reusable_entries(artifacts, run.model_sha256)
        # The settings as asked, by which the pipeline tells whether these artifacts are what it
        # asks for, and the sample sizes drawn, which a small split caps.
        recorded = {**settings.recorded(), "calibration_drawn": len(samples.calibration),
                    "calibration_source": "train split, seeded sample",
                    "probe_drawn": len(samples.probe), "probe_source": "validation split"}
        failed = []
        with tempfile.TemporaryDirectory(dir=artifacts, prefix=WORK_PREFIX) as work:
            calibration_file = Path(work) / "calibration.npz"
            np.savez(calibration_file, calibration=samples.calibration, probe=samples.probe)
            for number, variant in enumerate(variants, start=1):
                prefix = f"[{number}/{len(variants)}] {variant.name}"
                print(f"{prefix}: converting...", flush=True)
                entry = _convert_one(run, variant, calibration_file, Path(work), artifacts,
                                     metadata, settings, samples.probe, reference,
                                     samples.probe_labels, prefix)
                # Each entry keeps the settings it was made with: a later run of convert for some
                # variants, with other settings, keeps the other entries as they were made.
                entries[variant.name] = dict(entry, settings=recorded)
                # Rewritten after every variant, so it always describes the files on disk, even
                # when a later variant is interrupted.
                manifest = _manifest(run, entries, recorded)
                write_json(artifacts / MANIFEST, manifest)
                if "error" in entry:
                    failed.append(variant.name)
                    print(printable(f"{prefix}: FAILED: {entry['error']}"), flush=True)
                else:
                    check = entry["checks"]
                    print(f"{prefix}: {entry['bytes']:,} bytes, top-1 agreement "
                          f"{check['top1_agreement']:.4f}, max |diff| {check['max_abs_diff']:.2e}, "
                          f"{entry['conversion_seconds']:.1f} s", flush=True)
                    if "warning" in entry:
                        print(f"{prefix}: WARNING: {entry['warning']}", flush=True)
                    if "mixed" in entry:
                        print(f"{prefix}: {_budget_line(entry['mixed'])}", flush=True)
        write_quantization_summary(artifacts)
        return manifest, failed


def _budget_line(mixed: dict) -> str:
    """What a *-mixed variant's search reached, against its budget."""
    share = mixed["int8_mac_share"]
    line = (f"{len(mixed['float_layers'])} of {mixed['layers']} layers kept in float"
            + (f" ({100 * share:.1f}% of the MACs in int8)" if share is not None else "")
            + f", validation drop {mixed['validation_drop_points']:.2f} points (budget "
            f"{mixed['max_drop_points']:g})")
    if not mixed["budget_met"]:
        line += ": budget not met even with every quantized layer in float"
    return line


def _manifest(run, entries: dict, settings: dict) -> dict:
    return {
        "manifest_version": MANIFEST_VERSION,
        "source_model": {"file": "../model.keras", "sha256": run.model_sha256},
        "labels": run.class_names,
        "input": {"image_size": run.image_size, "norm_mean": NORM_MEAN, "norm_std": NORM_STD,
                  "layout": "NHWC"},
        "settings": settings,
        "versions": conversion_versions(),
        "command": edgekit_command_line("convert", shlex.join(sys.argv)),
        "variants": [entries[name] for name in sorted(entries, key=_registry_order)],
    }


def _registry_order(name: str) -> int:
    from .variants import VARIANTS

    names = list(VARIANTS)
    return names.index(name) if name in names else len(names)


def _reusable_entries(artifacts: Path, model_sha256: str) -> dict:
    """Entries of an earlier manifest made from this same model (kept when --variants converts
    a subset); artifacts of a different model are deleted rather than left mislabelled."""
    from edge_runtime.errors import UserError
    from edge_runtime.manifest import read_manifest, variant_file

    path = artifacts / MANIFEST
    try:
        previous = read_manifest(path) if path.is_file() else {}
    except UserError:  # damaged: written again from scratch
        previous = {}
    entries = {e["name"]: e for e in previous.get("variants", [])}
    if previous.get("source_model", {}).get("sha256") == model_sha256:
        return entries
    for entry in entries.values():
        try:
            variant_file(artifacts, entry).unlink(missing_ok=True)
        except (UserError, IsADirectoryError):  # never outside artifacts/, nor logs/
            continue
    return {}


def _convert_one(run, variant: Variant, calibration_file: Path, work: Path, artifacts: Path,
                 metadata: dict, settings: ConvertSettings, probe_pixels: np.ndarray,
                 reference: np.ndarray,
                 labels: np.ndarray, prefix: str) -> dict:
    """Build one variant in a child, verify it, and move it into place; or say why not.
    ``prefix`` ("[7/10] qat-int8") starts the lines the child prints while it works."""
    entry = {"name": variant.name, "file": variant.file, "format": variant.format,
             "precision": variant.precision, "description": variant.description,
             "input_normalization": {"mean": variant.norm_mean, "std": variant.norm_std}}
    target = work / variant.file
    final = artifacts / variant.file
    logs = artifacts / "logs"
    logs.mkdir(exist_ok=True)
    try:
        try:
            facts = _build_in_child(run.path, variant, calibration_file, target, metadata,
                                    settings, prefix)
        finally:
            log = Path(f"{target}.log")
            if log.is_file():
                os.replace(log, logs / f"{variant.name}.log")
        probe = scale_pixels(probe_pixels, variant.norm_mean, variant.norm_std)
        predictions, io = predict_file(target, probe)
    except Exception as exc:  # a converter or interpreter failure costs only this variant
        final.unlink(missing_ok=True)
        return dict(entry, error=f"{_one_line(exc)} (log: artifacts/logs/{variant.name}.log)")
    checks = compare(reference, predictions, labels)
    if variant.max_abs_diff is not None:
        checks["tolerance_max_abs_diff"] = variant.max_abs_diff
        if checks["max_abs_diff"] > variant.max_abs_diff:
            final.unlink(missing_ok=True)
            return dict(entry, checks=checks, error=(
                f"disagrees with the Keras model: max |diff| {checks['max_abs_diff']:.2e} > "
                f"tolerance {variant.max_abs_diff:.0e}"))
    os.replace(target, final)
    layers = facts.pop("quantization_layers", None)
    if layers is not None:
        facts["quantization_report"] = write_layer_report(artifacts, variant.name, layers)
    warning = accuracy_warning(checks)
    return dict(entry, bytes=final.stat().st_size, sha256=file_sha256(final), io=io,
                checks=checks, **facts, **({"warning": warning} if warning else {}))
