"""Will a converted file run there? Each file is loaded and invoked by every runtime of its
format in every environment ``device_envs`` has ready (this machine, tflite-runtime 2.14's
numpy<2 Python, emulated Raspberry Pis), and compared with this machine's answers on the same
seeded images. The verdicts come from those runs; the operator list comes from the file; where
each runtime publishes wheels (``WHEELS``) is the one part kept by hand.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edge_runtime.errors import UserError, printable
from edge_runtime.interpreters import model_format
from edge_runtime.probe import ARITHMETIC_OPERATORS

from .device_envs import Environment

# Python versions with a published wheel per runtime and platform, read off pip
# (`pip install --dry-run --only-binary=:all: --platform ... --python-version ...`) for the
# versions the environments install; docs/camera-and-pi.md says how to refresh it.
WHEELS = {
    "ai-edge-litert": {"aarch64": "3.10-3.14", "armv7l": "none", "x86_64": "3.10-3.14"},
    "tflite-runtime": {"aarch64": "3.9-3.11", "armv7l": "3.9-3.11", "x86_64": "3.9-3.11"},
    "onnxruntime": {"aarch64": "3.11-3.14", "armv7l": "none", "x86_64": "3.11-3.14"},
    "mediapipe": {"aarch64": "3.9-3.14", "armv7l": "none", "x86_64": "3.9-3.14"},
}
RUNTIMES_BY_FORMAT = {"tflite": ("ai-edge-litert", "tflite-runtime", "mediapipe"),
                      "onnx": ("onnxruntime",)}
# Emulated start-up (numpy, the runtime) takes seconds, each file a few more.
SECONDS_PER_PROBE = {False: 60, True: 240}
SECONDS_PER_FILE = {False: 10, True: 60}


def tflite_operators(path: Path) -> list[dict]:
    """Each operator the file uses: name, version and how many nodes use it."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    counts = [0] * len(model.operatorCodes or [])
    for subgraph in model.subgraphs or []:
        for operator in subgraph.operators or []:
            counts[operator.opcodeIndex] += 1
    operators = []
    for code, count in zip(model.operatorCodes or [], counts):
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = code.customCode.decode() if code.customCode else names.get(builtin, str(builtin))
        operators.append({"name": name, "version": code.version, "nodes": count})
    return operators


def onnx_operators(path: Path) -> dict:
    """The opsets the file imports and its node types (with their domain) and counts."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}:{node.op_type}" if node.domain else node.op_type
        nodes[key] = nodes.get(key, 0) + 1
    return {"opsets": {entry.domain or "ai.onnx": entry.version
                       for entry in model.opset_import},
            "nodes": [{"name": name, "nodes": count} for name, count in nodes.items()]}


def _operators(path: Path) -> dict:
    try:
        if model_format(path) == "onnx":
            return onnx_operators(path)
        return {"operators": tflite_operators(path)}
    except Exception as exc:  # noqa: BLE001 - a damaged file is reported, not raised
        return {"operators_error": f"cannot be read: {printable(str(exc).splitlines()[0])}"}


def _probe_lines(environment: Environment, runtime: str, files: list[Path],
                 images: Optional[Path]) -> dict:
    """Run the probe over ``files``: {file: answer}; a file the process died on (a crash of
    the runtime) is missing."""
    environ = dict(os.environ)
    if environment.paths:
        environ["PYTHONPATH"] = os.pathsep.join(environment.paths)
    environ.pop("PYTHONHOME", None)
    timeout = SECONDS_PER_PROBE[environment.emulated] \
        + SECONDS_PER_FILE[environment.emulated] * len(files)
    try:
        result = subprocess.run([*environment.command, "-m", "edge_runtime.probe", "--runtime",
                                 runtime, *(["--images", str(images)] if images else []),
                                 *map(str, files)], capture_output=True, text=True,
                                env=environ, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"__failure__": f"no answer in {timeout} s"}
    answers = {}
    for line in result.stdout.splitlines():
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            continue
        answers[answer.get("file")] = answer
    if result.returncode != 0:
        answers["__failure__"] = _death(result)
    return answers


def _death(result: subprocess.CompletedProcess) -> str:
    code = result.returncode
    if code < 0:
        try:
            return f"crashed: {signal.Signals(-code).name} ({signal.strsignal(-code)})"
        except ValueError:
            return f"crashed: signal {-code}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # qemu reports a guest's fatal signal itself and exits with 128 + the signal.
    return (f"crashed: {printable(lines[-1][:200])}" if lines else f"exited with {code}")


def probe_environment(environment: Environment, runtime: str, files: list[Path],
                      images: Optional[Path] = None) -> dict:
    """{file: answer} for every file, each probed in one process (on the images listed in
    the file ``images``, else on seeded random pixels); the files after a crash are probed
    again one process each, so the crash is pinned on the file that caused it."""
    answers = _probe_lines(environment, runtime, files, images)
    failure = answers.pop("__failure__", None)
    for path in files:
        if str(path) in answers:
            continue
        single = _probe_lines(environment, runtime, [path], images) if len(files) > 1 else \
            {"__failure__": failure}
        alone = single.pop("__failure__", None)
        answers[str(path)] = single.get(str(path)) or {
            "file": str(path), "runtime": runtime, "loads": False, "runs": False,
            "error": alone or failure or "no answer"}
    return answers


def _compared(answer: dict, reference: Optional[dict]) -> dict:
    """Largest probability difference and top-1 agreement against this machine's answer."""
    if not reference or "probabilities" not in answer or "probabilities" not in reference:
        return {}
    ours, theirs = np.array(answer["probabilities"]), np.array(reference["probabilities"])
    if ours.shape != theirs.shape:
        return {"max_diff": None, "top1_agreement": 0.0}
    return {"max_diff": float(np.max(np.abs(ours - theirs))),
            "top1_agreement": float(np.mean(ours.argmax(1) == theirs.argmax(1)))}


def verdict(answer: dict) -> str:
    """One word for a target: runs, slow (arithmetic on reference kernels), fails (loads but
    cannot run), refused (does not load) or crashed (the process died)."""
    if answer.get("runs"):
        xnnpack = answer.get("xnnpack") or {}
        slow = [name for name in xnnpack.get("not_delegated", []) if name in ARITHMETIC_OPERATORS]
        return "slow" if slow else "runs"
    error = answer.get("error", "")
    if error.startswith("crashed") or error.startswith("no answer"):
        return "crashed"
    return "fails" if answer.get("loads") else "refused"


def _target(environment: Environment, runtime: str, answer: dict,
            reference: Optional[dict]) -> dict:
    target = {"runtime": runtime, "environment": environment.name,
              "machine": environment.machine, "emulated": environment.emulated,
              "device": environment.device, "version": answer.get("version"),
              "python": answer.get("python"), "verdict": verdict(answer)}
    if answer.get("error"):
        target["error"] = answer["error"]
    xnnpack = answer.get("xnnpack")
    if xnnpack:
        target["xnnpack"] = {"delegated": xnnpack["delegated"],
                             "operators": xnnpack["operators"],
                             "reference_kernels": xnnpack["not_delegated"]}
    target.update(_compared(answer, reference))
    return target


def runtimes_for(path: Path, variant: Optional[str]) -> tuple[str, ...]:
    """The runtimes a file is checked on; MediaPipe only for the MediaPipe-ready variant."""
    runtimes = RUNTIMES_BY_FORMAT[model_format(path)]
    if "mediapipe" not in (variant or path.stem):
        runtimes = tuple(name for name in runtimes if name != "mediapipe")
    return runtimes


def check_files(files: dict[str, Path], environments: list[Environment],
                say: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """{variant: report} for ``files`` ({variant or file name: path}): the operators, each
    runtime's verdict in each environment, and where its wheels exist. The first environment
    is this machine's, whose answers the others are compared with."""
    jobs = []
    for environment in environments:
        for runtime in environment.runtimes:
            wanted = [path for name, path in files.items() if runtime in runtimes_for(path, name)]
            if wanted:
                jobs.append((environment, runtime, wanted))

    def run(job):
        environment, runtime, wanted = job
        answers = probe_environment(environment, runtime, wanted)
        say(f"{environment.name}, {runtime}: {len(wanted)} file(s) probed")
        return job, answers

    # One probe per environment and runtime; each is one process, mostly waiting on qemu.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(run, jobs))
    host = environments[0]
    reference = {}
    for (environment, runtime, _), answers in results:
        if environment is host:
            for file, answer in answers.items():
                reference.setdefault(file, answer)  # ai-edge-litert first, then onnxruntime
    reports = {}
    for name, path in files.items():
        report = {"file": path.name, "format": model_format(path), **_operators(path),
                  "targets": [],
                  "wheels": {runtime: WHEELS[runtime] for runtime in runtimes_for(path, name)}}
        for (environment, runtime, _), answers in results:
            if str(path) in answers:
                report["targets"].append(_target(environment, runtime, answers[str(path)],
                                                 reference.get(str(path))))
        reports[name] = report
    return reports


def summary_line(report: dict) -> str:
    """One line per file: each target's verdict, e.g. "runs on 5 of 6 (tflite-runtime on
    Raspberry Pi 4 (Cortex-A72), emulated: refused)"."""
    targets = report["targets"]
    good = [t for t in targets if t["verdict"] == "runs"]
    others = [f"{t['runtime']} on {t['environment']}: {t['verdict']}" for t in targets
              if t["verdict"] != "runs"]
    line = f"runs on {len(good)} of {len(targets)}"
    return line + (f" ({'; '.join(others)})" if others else "")


def check_or_raise(files: dict[str, Path]) -> None:
    """Refuse what no probe can answer: no files, or a path that is not a model file."""
    if not files:
        raise UserError("no .tflite or .onnx file to check")
    for path in files.values():
        if not path.is_file():
            raise UserError(f"{printable(str(path))}: no such file")
        if path.suffix not in (".tflite", ".onnx"):
            raise UserError(f"{printable(str(path))}: not a .tflite or .onnx file")
