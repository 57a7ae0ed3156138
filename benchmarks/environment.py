"""What a benchmark figure depends on besides the code: the machine and the libraries."""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from typing import Optional

from edge_runtime.cpu_features import int8_dot_product

PACKAGES = ("numpy", "pillow", "tensorflow", "keras", "ai-edge-litert", "tflite-runtime",
            "onnxruntime")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (taskset, a
    container's cpuset pin it below the machine's count), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads() -> tuple[int, ...]:
    """The thread counts measured unless asked otherwise: 1 and every usable core."""
    return tuple(sorted({1, usable_cores()}))


def environment(command: str) -> dict:
    """CPU (and its int8 dot-product instructions), cores (and those this process may use),
    memory, OS, Python, library versions, the command line and the time."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        memory_gib = None
    return {"cpu": cpu_model(), "int8_dot_product": int8_dot_product(),
            "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "machine": platform.machine(), "host": platform.node(),
            "memory_gib": round(memory_gib, 1) if memory_gib else None,
            "os": platform.platform(), "python": platform.python_version(),
            "versions": versions, "command": command,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def device_check_verdicts(manifest: Optional[dict]) -> dict[str, list[dict]]:
    """Per variant, the verdicts `edgekit check` (or the conversion) recorded in its
    manifest: where each runtime loads and runs the file."""
    verdicts = {}
    for entry in (manifest or {}).get("variants", []):
        check = entry.get("device_check")
        if isinstance(check, dict) and isinstance(check.get("targets"), list):
            verdicts[entry["name"]] = [
                {key: target.get(key) for key in ("runtime", "environment", "verdict")}
                for target in check["targets"] if isinstance(target, dict)]
    return verdicts
