"""The state of the machine around a benchmark: CPU frequencies and governor per core, the
SoC's temperature and, on a Raspberry Pi, its throttling flags, read before and after the
measurements, so that a report can say when a latency was measured on a CPU that slowed down
or warmed up (a Pi without a heatsink throttles at 80-85 °C). Each reading is whatever the
machine offers: a file or command that is missing leaves its field out, never an error.
"""
from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Optional

CPU_ROOT = Path("/sys/devices/system/cpu")
THERMAL_ROOT = Path("/sys/class/thermal")
# A change smaller than these is measurement noise, not a warming or a slowdown.
TEMPERATURE_RISE_C = 2.0
FREQUENCY_DROP = 0.05


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _number(path: Path) -> Optional[int]:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cpu_frequencies(root: Path = CPU_ROOT) -> list[dict]:
    """Per core with cpufreq: governor and current/maximum frequency in MHz."""
    cores = []
    for folder in sorted(root.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        freq = folder / "cpufreq"
        if not freq.is_dir():
            continue
        current = _number(freq / "scaling_cur_freq")
        maximum = _number(freq / "cpuinfo_max_freq")
        cores.append({"core": int(folder.name[3:]), "governor": _read(freq / "scaling_governor"),
                      "current_mhz": current // 1000 if current else None,
                      "max_mhz": maximum // 1000 if maximum else None})
    return cores


def temperatures(root: Path = THERMAL_ROOT) -> dict[str, float]:
    """Each thermal zone's temperature in °C, by its type (cpu-thermal on a Pi)."""
    found = {}
    for zone in sorted(root.glob("thermal_zone*")):
        millidegrees = _number(zone / "temp")
        if millidegrees is not None:
            found[_read(zone / "type") or zone.name] = millidegrees / 1000
    return found


def throttled() -> Optional[str]:
    """``vcgencmd get_throttled``'s value on a Raspberry Pi (0x0: never throttled), else None."""
    if shutil.which("vcgencmd") is None:
        return None
    try:
        result = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True,
                                timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = result.stdout.strip()
    return text.split("=", 1)[1] if result.returncode == 0 and "=" in text else None


def emulation(root: Path = CPU_ROOT) -> Optional[str]:
    """What emulates this machine, when it can be told: under qemu's user mode the process
    sees an ARM machine while the kernel's CPU description (sysfs, not emulated) is x86."""
    modalias = _read(root / "modalias") or ""
    machine = platform.machine()
    if "type:x86" in modalias and machine not in ("x86_64", "i686", "AMD64"):
        return f"{machine} emulated on an x86 machine (qemu user mode)"
    return None


def device_state() -> dict:
    """One reading: frequencies, temperatures, throttling."""
    return {"cpu_frequencies": cpu_frequencies(), "temperatures_c": temperatures(),
            "throttled": throttled()}


@contextlib.contextmanager
def watched() -> Iterator[dict]:
    """The device's state before and after the block: {"before", "after", "emulated"}."""
    record = {"before": device_state(), "emulated": emulation()}
    try:
        yield record
    finally:
        record["after"] = device_state()


def changes(record: dict) -> list[str]:
    """Sentences for what changed during the run: a warming, a frequency drop, throttling;
    empty when nothing did."""
    before, after = record.get("before") or {}, record.get("after") or {}
    said = []
    for zone, start in (before.get("temperatures_c") or {}).items():
        end = (after.get("temperatures_c") or {}).get(zone)
        if end is not None and end - start >= TEMPERATURE_RISE_C:
            said.append(f"{zone} warmed from {start:.1f} to {end:.1f} °C during the run")
    ends = {core["core"]: core for core in after.get("cpu_frequencies") or []}
    dropped = []
    for core in before.get("cpu_frequencies") or []:
        end = ends.get(core["core"], {}).get("current_mhz")
        start = core.get("current_mhz")
        if start and end is not None and end < start * (1 - FREQUENCY_DROP):
            dropped.append(f"core {core['core']} {start} -> {end} MHz")
    if dropped:
        said.append("CPU frequency dropped during the run (" + ", ".join(dropped) + ")")
    if after.get("throttled") not in (None, "0x0"):
        said.append(f"the Pi reports throttling (vcgencmd get_throttled: {after['throttled']})")
    return said


def describe(record: dict) -> list[str]:
    """REPORT.md's lines on the device's state, said beside the latencies."""
    if not record:
        return []
    lines = []
    if record.get("emulated"):
        lines.append(f"Emulated: {record['emulated']}; its latencies are not a device's.")
    before, after = record.get("before") or {}, record.get("after") or {}
    cores = before.get("cpu_frequencies") or []
    governors = sorted({core["governor"] for core in cores if core.get("governor")})
    if cores:
        lines.append(f"CPU frequency governor: {', '.join(governors) or 'unknown'}; "
                     + ", ".join(f"core {c['core']} {c['current_mhz']}/{c['max_mhz']} MHz"
                                 for c in cores[:8]) + " (current/max, before the run).")
    else:
        lines.append("CPU frequency: not readable here (no cpufreq in /sys).")
    temps = before.get("temperatures_c") or {}
    if temps:
        end = after.get("temperatures_c") or {}
        lines.append("Temperature before -> after: " + ", ".join(
            f"{zone} {start:.1f} -> {end.get(zone, float('nan')):.1f} °C"
            for zone, start in temps.items()) + ".")
    else:
        lines.append("Temperature: no sensor here (no /sys/class/thermal zone).")
    happened = changes(record)
    lines.append(("**During the run:** " + "; ".join(happened) + ": latencies measured late "
                  "in the run may be slower than a cool device's.") if happened else
                 "No warming, frequency drop or throttling measured during the run.")
    return lines
