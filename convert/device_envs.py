"""The Pythons a converted file is checked in: this machine's own, a numpy<2 one with
tflite-runtime 2.14 (what old and 32-bit Pi OS images have), and emulated Raspberry Pis.

An emulated Pi is Debian bookworm's arm64 Python 3.11 (the base of Raspberry Pi OS Bookworm)
run by qemu's user-mode emulation (`qemu-aarch64 -L ROOT`), with each runtime's published
aarch64 wheels, as a Pi's pip installs them. Two lessons of building it are in the code:
qemu serves /proc/cpuinfo from the root, and the runtimes pick their kernels from it, so each
Pi gets a cpuinfo that matches the CPU qemu emulates (a Pi 4's Cortex-A72 has no dot-product
instruction; a cpuinfo that claims one makes ai-edge-litert's int8 kernels die of an illegal
instruction); and qemu's default CPU ("max", with every newer extension) made ai-edge-litert
2.3.0's int8 files answer one class for every image, which no Pi does, so the CPU is named.

Everything lives under one cache folder, built once per machine by ``build_environments``
(`edgekit check --setup`) and reused: the root's .deb files come from apt (the arm64
architecture added to dpkg), the wheels from pip with every manylinux tag a Pi's pip accepts.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from edge_runtime.errors import UserError

# Debian bookworm's arm64 python3.11-minimal and libpython3.11-stdlib with what they load,
# plus libstdc++ for the runtimes' C++ libraries.
ARM64_PACKAGES = (
    "gcc-12-base", "libbz2-1.0", "libc6", "libcom-err2", "libcrypt1", "libdb5.3", "libexpat1",
    "libffi8", "libgcc-s1", "libgssapi-krb5-2", "libk5crypto3", "libkeyutils1", "libkrb5-3",
    "libkrb5support0", "liblzma5", "libncursesw6", "libnsl2", "libpython3.11-minimal",
    "libpython3.11-stdlib", "libreadline8", "libsqlite3-0", "libssl3", "libstdc++6",
    "libtinfo6", "libtirpc3", "libuuid1", "python3.11-minimal", "zlib1g")
ARCH_INDEPENDENT_PACKAGES = ("libtirpc-common", "media-types")
# The 2.x aarch64 wheels of ai-edge-litert are tagged manylinux_2_27 only: pip picks 1.4.0
# unless every tag a glibc 2.36 system accepts is offered.
GLIBC_MINOR = 36


@dataclass(frozen=True)
class Device:
    """A Raspberry Pi model as qemu emulates it."""

    name: str
    title: str
    qemu_cpu: str
    cpu_part: str
    features: str


DEVICES = (
    Device("pi4", "Raspberry Pi 4 (Cortex-A72)", "cortex-a72", "0xd08",
           "fp asimd evtstrm crc32 cpuid"),
    Device("pi5", "Raspberry Pi 5 (Cortex-A76)", "cortex-a76", "0xd0b",
           "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
           "lrcpc dcpop asimddp"),
)


@dataclass(frozen=True)
class PackageSet:
    """The packages of one target environment and the runtimes they give."""

    name: str
    requirements: tuple[str, ...]
    runtimes: tuple[str, ...]


LITERT_SET = PackageSet("litert", ("numpy>=2", "pillow", "ai-edge-litert>=2", "onnxruntime"),
                        ("ai-edge-litert", "onnxruntime"))
# tflite-runtime 2.14 is the last release and was built against numpy 1.
TFLITE_RUNTIME_SET = PackageSet("tflite-runtime",
                                ("numpy<2", "pillow", "tflite-runtime==2.14.0"),
                                ("tflite-runtime",))
MEDIAPIPE_SET = PackageSet("mediapipe", ("mediapipe==1.2.2",), ("mediapipe",))
# Which packages each emulated Pi is checked with: the current runtimes on both, and
# tflite-runtime on the Pi 4, the board old images run on.
EMULATED = (("pi4", LITERT_SET), ("pi5", LITERT_SET), ("pi4", TFLITE_RUNTIME_SET))


@dataclass(frozen=True)
class Environment:
    """A Python a probe runs in: its command, the folders it imports from, its runtimes."""

    name: str
    machine: str
    emulated: bool
    command: tuple[str, ...]
    paths: tuple[str, ...]
    runtimes: tuple[str, ...]
    device: Optional[str] = None


def default_cache() -> Path:
    """``$EDGEKIT_DEVICE_ENVS``, else ``$EDGEKIT_CACHE/device-envs`` or
    ``~/.cache/edgekit/device-envs``."""
    if os.environ.get("EDGEKIT_DEVICE_ENVS"):
        return Path(os.environ["EDGEKIT_DEVICE_ENVS"])
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) \
        / "device-envs"


def _arm64_platform_flags() -> list[str]:
    tags = [f"manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC_MINOR + 1)]
    tags += ["manylinux2014_aarch64", "linux_aarch64"]
    return [flag for tag in tags for flag in ("--platform", tag)]


def _run(command: list[str], what: str, cwd: Optional[Path] = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines()
                 if line.strip() and not line.startswith("WARNING")]
        raise UserError(f"{what} failed: {lines[-1] if lines else 'exit ' + str(result.returncode)}")


def _pip_target(folder: Path, requirements: tuple[str, ...], arm64: bool) -> None:
    """The packages installed into ``folder`` (atomically: a half-built folder is never
    mistaken for a finished one)."""
    if folder.is_dir():
        return
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(work)]
    if arm64:
        command += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                    "--abi", "cp311", *_arm64_platform_flags()]
    _run(command + list(requirements), f"pip install {' '.join(requirements)}")
    work.rename(folder)


def _arm64_root(cache: Path) -> Path:
    """Debian bookworm's arm64 Python, unpacked from its .deb files."""
    root = cache / "arm64-root"
    if root.is_dir():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise UserError("building the emulated Pi needs Debian's apt-get and dpkg")
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                             text=True).stdout.split()
    if "arm64" not in foreign:
        raise UserError("apt does not know the arm64 architecture: run `sudo dpkg "
                        "--add-architecture arm64 && sudo apt-get update` first")
    downloads = cache / "arm64-debs"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir(parents=True)
    _run(["apt-get", "download", "-q", *(f"{name}:arm64" for name in ARM64_PACKAGES),
          *ARCH_INDEPENDENT_PACKAGES], "apt-get download of the arm64 Python", cwd=downloads)
    work = cache / "arm64-root.partial"
    shutil.rmtree(work, ignore_errors=True)
    for deb in sorted(downloads.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(work)], f"dpkg -x {deb.name}")
    shutil.rmtree(downloads)
    work.rename(root)
    return root


def _device_root(cache: Path, root: Path, device: Device) -> Path:
    """A root for one Pi: the shared arm64 root's folders, and a /proc/cpuinfo of its CPU
    (qemu serves the guest's /proc/cpuinfo from the root named by -L)."""
    folder = cache / f"root-{device.name}"
    (folder / "proc").mkdir(parents=True, exist_ok=True)
    for name in ("etc", "lib", "usr"):
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(root / name)
    cores = "".join(f"processor\t: {core}\nBogoMIPS\t: 108.00\nFeatures\t: {device.features}\n"
                    f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
                    f"CPU part\t: {device.cpu_part}\nCPU revision\t: 1\n\n" for core in range(4))
    (folder / "proc" / "cpuinfo").write_text(cores + f"Model\t\t: {device.title}\n")
    # The guest's Python starts its children (benchmark subjects, pip's) through
    # sys.executable: a host script that starts qemu again, so they are emulated too.
    python = folder / "python3"
    python.write_text(f"#!/bin/sh\nexec {shutil.which('qemu-aarch64') or 'qemu-aarch64'} "
                      f"-cpu {device.qemu_cpu} -L {folder} -0 {python} "
                      f"{folder}/usr/bin/python3.11 \"$@\"\n")
    python.chmod(0o755)
    return folder


def build_environments(cache: Path, say: Callable[[str], None]) -> None:
    """Build what is missing of the cached environments: the host's tflite-runtime one, and
    the emulated Pis where qemu-aarch64 and apt's arm64 packages can be had. A part that
    cannot be built is said and skipped; UserError only when nothing could be."""
    problems = []
    if platform.machine() == "x86_64" and sys.version_info[:2] <= (3, 11):
        say("host tflite-runtime 2.14 (numpy<2)...")
        try:
            _pip_target(cache / "host-tflite-runtime", TFLITE_RUNTIME_SET.requirements, False)
        except UserError as exc:
            problems.append(str(exc))
    if shutil.which("qemu-aarch64") is None:
        problems.append("no qemu-aarch64: install Debian's qemu-user for the emulated Pis")
    else:
        try:
            say("emulated Pi: Debian bookworm arm64 Python 3.11...")
            root = _arm64_root(cache)
            for device in DEVICES:
                _device_root(cache, root, device)
            for package_set in {package_set for _, package_set in EMULATED}:
                say(f"emulated Pi: {', '.join(package_set.requirements)} (aarch64 wheels)...")
                _pip_target(cache / f"arm64-{package_set.name}", package_set.requirements, True)
        except UserError as exc:
            problems.append(str(exc))
    for problem in problems:
        say(f"not built: {problem}")
    if problems and not available_environments(cache)[1:]:
        raise UserError(f"no environment could be built: {problems[0]}")


def _probe_path(cache: Path) -> str:
    """A folder holding a copy of edge_runtime and nothing else, for the probes' sys.path:
    the installed package's folder may hold other packages built for this machine."""
    import edge_runtime

    folder = cache / "probe"
    target = folder / "edge_runtime"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(Path(edge_runtime.__file__).parent, target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return str(folder)


def available_environments(cache: Path) -> list[Environment]:
    """The environments ready to run a probe: this Python first, then the cached ones that
    were built (see ``build_environments``)."""
    machine = platform.machine()
    host = Environment(f"{machine} (this machine)", machine, False, (sys.executable,), (),
                       LITERT_SET.runtimes)
    found = []
    # MediaPipe cannot share an environment with tensorflow-model-optimization (absl-py
    # pins): it is checked where $EDGEKIT_MEDIAPIPE_PYTHON names a Python that has it.
    mediapipe = os.environ.get("EDGEKIT_MEDIAPIPE_PYTHON")
    if mediapipe:
        found.append(Environment(f"{machine} MediaPipe", machine, False, (mediapipe,), (),
                                 MEDIAPIPE_SET.runtimes))
    tflite = cache / "host-tflite-runtime"
    if tflite.is_dir():
        # -S: this Python's own site-packages (numpy 2) stays out.
        found.append(Environment(f"{machine} tflite-runtime", machine, False,
                                 (sys.executable, "-S"), (str(tflite),),
                                 TFLITE_RUNTIME_SET.runtimes))
    by_name = {device.name: device for device in DEVICES}
    for device_name, package_set in EMULATED:
        python = cache / f"root-{device_name}" / "python3"
        packages = cache / f"arm64-{package_set.name}"
        if python.is_file() and packages.is_dir() and shutil.which("qemu-aarch64"):
            device = by_name[device_name]
            # The Pi's own name for the current runtimes; the old-image set says which it is.
            name = f"{device.title}, emulated" + (
                "" if package_set is LITERT_SET else f", {package_set.name} 2.14")
            found.append(Environment(name, "aarch64", True,
                                     (str(python),), (str(packages),), package_set.runtimes,
                                     device.name))
    if found:
        probe_folder = _probe_path(cache)
        found = [Environment(env.name, env.machine, env.emulated, env.command,
                             env.paths + (probe_folder,), env.runtimes, env.device)
                 for env in found]
    return [host] + found
