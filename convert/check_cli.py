"""``edgekit check``: will each converted file load and run on a Raspberry Pi's runtimes? The
files of a run (or given files) probed in every environment ``device_envs`` has ready, a
table per file, and the verdicts written into the manifest beside them."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from edge_runtime.errors import UserError, printable
from edge_runtime.manifest import MANIFEST_NAME, read_manifest, variant_file

MODEL_SUFFIXES = (".tflite", ".onnx")


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit check``."""
    parser.add_argument("targets", nargs="*", type=Path, metavar="TARGET",
                        help="a run directory, its artifacts/ folder, or .tflite/.onnx files")
    parser.add_argument("--setup", action="store_true",
                        help="first build what is missing of the cached environments: "
                             "tflite-runtime 2.14 here, and emulated Raspberry Pis (needs "
                             "qemu-user and apt's arm64 architecture)")
    parser.add_argument("--this-machine", action="store_true",
                        help="check on this machine's runtimes only (seconds, no emulation)")
    parser.add_argument("--envs", type=Path, default=None,
                        help="the cached environments (default: $EDGEKIT_DEVICE_ENVS, else "
                             "$EDGEKIT_CACHE/device-envs or ~/.cache/edgekit/device-envs)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the full reports to FILE")


def files_to_check(targets: list[Path]) -> tuple[dict[str, Path], Optional[Path]]:
    """{variant or file name: path} and the folder whose manifest lists them (None for files
    given one by one); UserError for anything else."""
    if len(targets) == 1 and targets[0].is_dir():
        folder = targets[0]
        if not (folder / MANIFEST_NAME).is_file() and (folder / "artifacts").is_dir():
            folder = folder / "artifacts"
        if not (folder / MANIFEST_NAME).is_file():
            raise UserError(f"{printable(str(targets[0]))}: no {MANIFEST_NAME} in it or in "
                            "its artifacts/: run edgekit convert first, or give model files")
        manifest = read_manifest(folder / MANIFEST_NAME)
        files = {entry["name"]: variant_file(folder, entry) for entry in manifest["variants"]
                 if "error" not in entry}
        files = {name: path for name, path in files.items() if path.is_file()}
        return files, folder
    files = {}
    for path in targets:
        if path.is_dir():
            raise UserError(f"{printable(str(path))}: give one folder alone, or model files")
        files[path.name] = path
    return files, None


def environments_for(args: argparse.Namespace, say) -> list:
    """The environments to probe in, built first with --setup."""
    from .device_envs import available_environments, build_environments, default_cache

    cache = args.envs or default_cache()
    if args.setup:
        build_environments(cache, say)
    environments = available_environments(cache)
    return environments[:1] if args.this_machine else environments


def record_in_manifest(folder: Path, reports: dict[str, dict]) -> None:
    """Each checked entry of the folder's manifest gets its report (``device_check``)."""
    from edgekit.common.atomic import write_json

    manifest = read_manifest(folder / MANIFEST_NAME)
    for entry in manifest["variants"]:
        if entry["name"] in reports:
            report = dict(reports[entry["name"]])
            report.pop("file", None)
            entry["device_check"] = report
    write_json(folder / MANIFEST_NAME, manifest)


def _operators_line(report: dict) -> str:
    if "operators" in report:
        return ", ".join(f"{op['name']} v{op['version']}" + (f" x{op['nodes']}"
                         if op["nodes"] > 1 else "") for op in report["operators"])
    if "opsets" in report:
        opsets = ", ".join(f"{domain} {version}" for domain, version in report["opsets"].items())
        nodes = ", ".join(f"{node['name']} x{node['nodes']}" for node in report["nodes"])
        return f"opsets {opsets}; {nodes}"
    return report.get("operators_error", "")


def _target_row(target: dict) -> str:
    delegated = ""
    if "xnnpack" in target:
        xnnpack = target["xnnpack"]
        delegated = f"{xnnpack['delegated']}/{xnnpack['operators']}"
    agreement = ""
    if target.get("max_diff") is not None:
        agreement = f"{target['top1_agreement']:.0%} top-1, max diff {target['max_diff']:.1e}"
    detail = target.get("error", "")
    if target["verdict"] == "slow":
        names = target["xnnpack"]["reference_kernels"]
        detail = "not delegated: " + ", ".join(
            name + (f" x{names.count(name)}" if names.count(name) > 1 else "")
            for name in dict.fromkeys(names))
    return (f"| {target['runtime']} {target.get('version') or ''} | {target['environment']} "
            f"| {target['verdict']} | {delegated} | {agreement} | {printable(detail)} |")


def format_report(name: str, report: dict) -> str:
    """A file's report as Markdown: operators, one row per runtime and environment, wheels."""
    lines = [f"### {name} ({report['file']})", "", f"Operators: {_operators_line(report)}", "",
             "| runtime | where | verdict | XNNPACK | against this machine | detail |",
             "|---|---|---|---|---|---|"]
    lines += [_target_row(target) for target in report["targets"]]
    wheels = "; ".join(f"{runtime}: " + ", ".join(f"{platform} {versions}" for platform, versions
                                                  in table.items())
                       for runtime, table in report["wheels"].items())
    lines += ["", f"Wheels (Python versions): {wheels}", ""]
    return "\n".join(lines)


def check_and_report(files: dict[str, Path], environments: list, folder: Optional[Path],
                     json_path: Optional[Path] = None) -> dict[str, dict]:
    """Probe, print a table per file and a summary line each, record the verdicts in the
    folder's manifest; the reports."""
    from .device_check import check_files, summary_line

    started = time.monotonic()
    emulated = [env.name for env in environments if env.emulated]
    print(f"checking {len(files)} file(s) in {len(environments)} environment(s)"
          + (f" ({len(emulated)} emulated: minutes, not seconds)" if emulated else ""),
          flush=True)
    reports = check_files(files, environments, lambda line: print(f"  {line}", flush=True))
    print()
    for name, report in reports.items():
        print(format_report(name, report))
    for name, report in reports.items():
        print(f"{name}: {summary_line(report)}")
    if folder is not None:
        record_in_manifest(folder, reports)
    if json_path is not None:
        from edgekit.common.atomic import write_json

        write_json(json_path, reports)
    print(f"checked in {time.monotonic() - started:.1f} s"
          + (f"; verdicts recorded in {folder / MANIFEST_NAME}" if folder else ""))
    return reports


def run_check(args: argparse.Namespace, _prepared=None) -> int:
    """``edgekit check``."""
    if not args.targets and not args.setup:
        raise UserError("give a run directory, an artifacts folder or model files (or --setup)")
    files, folder = files_to_check(args.targets) if args.targets else ({}, None)
    if args.targets:
        from .device_check import check_or_raise

        check_or_raise(files)  # before minutes of --setup
    environments = environments_for(args, lambda line: print(line, file=sys.stderr,
                                                              flush=True))
    if not args.targets:
        print("environments ready: " + "; ".join(f"{env.name} ({', '.join(env.runtimes)})"
                                                  for env in environments))
        return 0
    check_and_report(files, environments, folder, args.json)
    return 0



def check_converted(folder: Path) -> None:
    """The conversion's own check: every file of ``folder`` in the environments ready (none is
    built here), a summary line each, the verdicts recorded in its manifest. A check that
    cannot run is a warning: the files are made and verified either way."""
    from .device_check import check_files, summary_line
    from .device_envs import available_environments, default_cache

    try:
        files, _ = files_to_check([folder])
        environments = available_environments(default_cache())
        reports = check_files(files, environments)
        record_in_manifest(folder, reports)
    except UserError as exc:
        print(f"warning: device check skipped: {exc}", flush=True)
        return
    where = "; ".join(env.name for env in environments)
    print(f"device check ({where}; edgekit check {folder} for the tables):", flush=True)
    for name, report in reports.items():
        print(printable(f"  {name}: {summary_line(report)}"), flush=True)
