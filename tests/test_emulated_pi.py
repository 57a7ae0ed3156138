"""The runtime on a Raspberry Pi's own instruction set: every converted file classifies the
same images on emulated Raspberry Pis (Debian bookworm arm64, qemu user mode, Cortex-A72 and
Cortex-A76, the runtimes' aarch64 wheels, no TensorFlow) as on this machine, through
`edge_runtime.Classifier` and `python3 -m edge_runtime.classify_command --json`; a benchmark
made there is compared with this machine's by `edgekit compare`.

The environments are `edgekit check --setup`'s (.ci/run builds them); where they are missing
the tests skip, except under $EDGEKIT_REQUIRE_EMULATED (set by .ci/run), where that fails.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEVICE_ENVS
from edgekit.cli import main
from edgekit.convert.device_check import check_files, probe_environment
from edgekit.convert.device_envs import available_environments

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets" / "cifar10-jpeg" / "test"
@pytest.fixture(scope="module")
def environments():
    found = [env for env in available_environments(DEVICE_ENVS) if env.emulated]
    if len(found) < 3:
        message = (f"emulated Pis not built in {DEVICE_ENVS}: run edgekit check --setup "
                   f"(found {[env.name for env in found]})")
        if os.environ.get("EDGEKIT_REQUIRE_EMULATED"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def images(converted_run, tmp_path_factory) -> list[str]:
    """The run's own test images, and 20 CIFAR-10 photos where ../shared has them."""
    run, _, _ = converted_run
    chosen = sorted((run.parent / "data" / "test").rglob("*.png"))
    if SHARED.is_dir():
        chosen += [sorted((SHARED / name).iterdir())[0] for name in sorted(
            p.name for p in SHARED.iterdir())][:10]
        chosen += [sorted((SHARED / name).iterdir())[1] for name in sorted(
            p.name for p in SHARED.iterdir())][:10]
    return [str(path) for path in chosen]


def classify_in(environment, runtime: str, files: list[Path], images: Path) -> dict:
    """{file name: probe answer} for every file, classifying the listed images."""
    found = probe_environment(environment, runtime, files, images)
    return {Path(file).name: answer for file, answer in found.items()}


def files_of(run: Path, suffix: str) -> list[Path]:
    return sorted((run / "artifacts").glob(f"model_*{suffix}"))


@pytest.fixture(scope="module")
def answers(converted_run, environments, images):
    """{(environment name, runtime): {file name: answer}}, this machine's first."""
    run, code, _ = converted_run
    assert code == 0
    here = available_environments(DEVICE_ENVS)
    listed = run.parent / "images.txt"
    listed.write_text("\n".join(images) + "\n")
    found = {}
    for environment in [here[0]] + [env for env in here if "tflite-runtime" in env.name
                                    and not env.emulated] + environments:
        for runtime in environment.runtimes:
            suffix = ".onnx" if runtime == "onnxruntime" else ".tflite"
            found[(environment.name, runtime, environment.emulated)] = classify_in(
                environment, runtime, files_of(run, suffix), listed)
    return found


def test_every_file_agrees_with_this_machine_on_the_emulated_pis(converted_run, answers,
                                                                images):
    _, _, manifest = converted_run
    integer_output = {entry["file"] for entry in manifest["variants"]
                      if entry["io"]["output"]["dtype"] in ("int8", "uint8")}
    assert len(integer_output) == 4  # int8, qat-int8 and their per-tensor twins
    host = {runtime: found for (_, runtime, emulated), found in answers.items()
            if not emulated}
    reference = {**host["ai-edge-litert"], **host["onnxruntime"]}
    checked = 0
    for (name, runtime, emulated), found in answers.items():
        if not emulated:
            continue
        for file, answer in found.items():
            if not answer.get("runs"):
                # tflite-runtime 2.14 predates FULLY_CONNECTED version 12 (dynamic-int8): the
                # file it cannot load is reported, and it is the only one.
                assert (runtime, file) == ("tflite-runtime", "model_dynamic-int8.tflite"), answer
                assert "FULLY_CONNECTED" in answer["error"]
                continue
            ours = np.array(answer["probabilities"])
            theirs = np.array(reference[file]["probabilities"])
            assert ours.shape == (len(images), theirs.shape[1])
            if "float" in file:
                assert np.abs(ours - theirs).max() <= 1e-5, (name, runtime, file)
            else:
                assert np.array_equal(ours.argmax(1), theirs.argmax(1)), (name, runtime, file)
            same_runtime = host.get(runtime, {}).get(file)
            if file in integer_output and same_runtime and "probabilities" in same_runtime:
                # Integer outputs on the same runtime: the same int8 values, or one step of
                # the output's scale (1/256) apart, which the ARM kernels' rounding gives on
                # a few real photos in a hundred (docs/results.md, "The files on a Pi").
                steps = np.abs(ours - np.array(same_runtime["probabilities"])) * 256
                assert steps.max() <= 1 + 1e-6, (name, runtime, file)
            checked += 1
    assert checked >= 2 * 10 + 7  # two Pis x ten files, and tflite-runtime's seven


def test_the_classify_command_answers_the_same_on_a_pi(converted_run, environments, images):
    run, _, _ = converted_run
    pi5 = next(env for env in environments if env.device == "pi5")
    model = run / "artifacts" / "model_int8.tflite"
    folder = run.parent / "data" / "test"
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(pi5.paths))
    command = ["-m", "edge_runtime.classify_command", str(model), str(folder), "--json",
               "--top-k", "3"]
    there = subprocess.run([*pi5.command, *command], capture_output=True, text=True,
                           env=environ, timeout=600)
    here = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          timeout=600)
    assert there.returncode == here.returncode == 0, there.stderr[-2000:]
    assert "on ai-edge-litert" in there.stderr
    lines = [json.loads(line) for line in there.stdout.splitlines()]
    assert len(lines) == 12
    assert lines == [json.loads(line) for line in here.stdout.splitlines()]


def test_a_report_made_on_an_emulated_pi_is_compared_with_this_machines(
        converted_run, environments, tmp_path, source_copy, capsys):
    run, _, _ = converted_run
    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("manifest.json", "labels.txt", "model_int8.tflite", "model_float32.tflite"):
        if (run / "artifacts" / name).is_file():
            shutil.copy(run / "artifacts" / name, folder / name)
    project = tmp_path / "project"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(project), str(source_copy)],
                   check=True, timeout=600)
    pi5 = next(env for env in environments if env.device == "pi5")
    device_copy = tmp_path / "on-pi"
    shutil.copytree(folder, device_copy)
    bench = ["-m", "edgekit.cli", "bench", "--threads", "1", "--rounds", "1",
             "--latency-seconds", "0.05", "--batch", "8"]
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join((str(project),) + pi5.paths))
    # From tmp_path: `-m` puts the working folder first on sys.path, and this checkout's
    # edgekit/ folder is not the installed package.
    there = subprocess.run([*pi5.command, *bench, str(device_copy)], capture_output=True,
                           text=True, env=environ, timeout=900, cwd=tmp_path)
    assert there.returncode == 0, there.stderr[-3000:]
    assert main(["bench", str(folder), "--threads", "1", "--rounds", "1",
                 "--latency-seconds", "0.05", "--batch", "8"]) == 0
    device_report = json.loads((device_copy / "report" / "benchmark.json").read_text())
    assert device_report["environment"]["machine"] == "aarch64"
    assert "emulated" in device_report["device"]["emulated"]
    assert "Emulated: aarch64" in (device_copy / "report" / "REPORT.md").read_text()
    capsys.readouterr()
    assert main(["compare", str(folder), str(device_copy)]) == 0
    out = capsys.readouterr().out
    assert "**emulated**" in out
    rows = [line for line in out.splitlines() if line.startswith("| int8 ")
            or line.startswith("| float32 ")]
    assert len(rows) == 2 and all(line.count("x |") == 1 for line in rows)


def test_check_gives_each_runtimes_verdict_on_the_pis(converted_run, environments):
    run, _, _ = converted_run
    artifacts = run / "artifacts"
    files = {name: artifacts / f"model_{name}.tflite" for name in ("int8", "dynamic-int8")}
    here = available_environments(DEVICE_ENVS)
    reports = check_files(files, [here[0]] + environments)
    verdicts = {name: {(t["runtime"], t["device"]): t for t in report["targets"]}
                for name, report in reports.items()}
    for device in ("pi4", "pi5"):
        int8 = verdicts["int8"][("ai-edge-litert", device)]
        assert int8["verdict"] == "runs" and int8["top1_agreement"] == 1.0
        assert "CONV_2D" not in int8["xnnpack"]["reference_kernels"]
    # tflite-runtime 2.14 on a Pi 4: the int8 file runs, XNNPACK taking none of it (its
    # arithmetic on the built-in kernels); the dynamic-range file does not load.
    old = verdicts["int8"][("tflite-runtime", "pi4")]
    assert old["verdict"] == "slow" and old["xnnpack"]["delegated"] == 0
    assert "CONV_2D" in old["xnnpack"]["reference_kernels"]
    refused = verdicts["dynamic-int8"][("tflite-runtime", "pi4")]
    assert refused["verdict"] == "refused" and "FULLY_CONNECTED" in refused["error"]
