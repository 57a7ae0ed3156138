"""`edgekit check` on this machine's runtimes, the device's state around a benchmark, and
`edgekit compare` of two reports: verdicts from real loads and runs, the bad cases refused in
one line."""
import json
import shutil
from pathlib import Path

import pytest

from edgekit.benchmarks import device_state
from edgekit.benchmarks.compare import matched_rows, read_report
from edgekit.cli import main
from edgekit.convert.device_check import check_files
from edgekit.convert.device_envs import available_environments


def bumped_operator_version(source: Path, target: Path, name: str, version: int) -> None:
    """``source`` with operator ``name`` claiming ``version``: an op no runtime has."""
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    code = getattr(schema.BuiltinOperator, name)
    for operator_code in model.operatorCodes:
        if max(operator_code.builtinCode, operator_code.deprecatedBuiltinCode) == code:
            operator_code.version = version
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))


@pytest.fixture(scope="module")
def checked(converted_run, tmp_path_factory):
    """The converted run's int8 and onnx-int8 files, a copy whose CONV_2D claims version 99,
    and a truncated copy, checked on this machine's runtimes."""
    run, code, _ = converted_run
    assert code == 0
    folder = tmp_path_factory.mktemp("check")
    artifacts = run / "artifacts"
    files = {"int8": artifacts / "model_int8.tflite",
             "onnx-int8": artifacts / "model_onnx-int8.onnx",
             "future-op": folder / "future.tflite", "truncated": folder / "truncated.tflite"}
    bumped_operator_version(files["int8"], files["future-op"], "CONV_2D", 99)
    files["truncated"].write_bytes(files["int8"].read_bytes()[:5000])
    environments = available_environments(folder / "no-envs")[:1]
    return check_files(files, environments)


def test_check_lists_operators_and_runs_each_file_on_its_runtimes(checked):
    int8 = checked["int8"]
    names = {op["name"] for op in int8["operators"]}
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= names
    assert all(op["version"] >= 1 and op["nodes"] >= 1 for op in int8["operators"])
    (target,) = int8["targets"]
    assert (target["runtime"], target["verdict"]) == ("ai-edge-litert", "runs")
    assert target["max_diff"] == 0.0 and target["top1_agreement"] == 1.0
    # XNNPACK takes the convolutions; what it leaves is named.
    assert 0 < target["xnnpack"]["delegated"] <= target["xnnpack"]["operators"]
    assert "CONV_2D" not in target["xnnpack"]["reference_kernels"]
    assert set(int8["wheels"]) == {"ai-edge-litert", "tflite-runtime"}
    assert int8["wheels"]["ai-edge-litert"]["armv7l"] == "none"

    onnx = checked["onnx-int8"]
    assert onnx["opsets"]["ai.onnx"] >= 13
    assert any(node["name"] == "Conv" for node in onnx["nodes"])
    assert [(t["runtime"], t["verdict"]) for t in onnx["targets"]] == [("onnxruntime", "runs")]


def test_an_operator_version_the_runtime_lacks_and_a_truncated_file_are_refused(checked):
    (future,) = checked["future-op"]["targets"]
    assert future["verdict"] == "refused"
    assert "CONV_2D" in future["error"] and "99" in future["error"]
    assert {"name": "CONV_2D", "version": 99, "nodes": 3} in checked["future-op"]["operators"]
    (truncated,) = checked["truncated"]["targets"]
    assert truncated["verdict"] == "refused"
    assert "operators_error" in checked["truncated"]


def test_edgekit_check_records_verdicts_in_the_manifest(converted_run, tmp_path, capsys):
    run, _, _ = converted_run
    artifacts = tmp_path / "artifacts"
    shutil.copytree(run / "artifacts", artifacts)
    assert main(["check", str(artifacts), "--this-machine", "--json",
                 str(tmp_path / "check.json")]) == 0
    out = capsys.readouterr().out
    assert "| ai-edge-litert 2." in out and "float32: runs on 1 of 1" in out
    assert "int16x8: runs on 0 of 1 (ai-edge-litert on x86_64 (this machine): slow)" in out
    manifest = json.loads((artifacts / "manifest.json").read_text())
    for entry in manifest["variants"]:
        verdicts = {t["runtime"]: t["verdict"] for t in entry["device_check"]["targets"]}
        # int16 activations: XNNPACK takes none of the file, which runs on the interpreter's
        # own kernels.
        expected = "slow" if entry["name"] == "int16x8" else "runs"
        assert verdicts in ({"ai-edge-litert": expected}, {"onnxruntime": expected}), \
            entry["name"]
    assert set(json.loads((tmp_path / "check.json").read_text())) == {
        entry["name"] for entry in manifest["variants"]}


def test_the_conversion_records_this_machines_verdicts(converted_run):
    _, _, manifest = converted_run
    for entry in manifest["variants"]:
        targets = entry["device_check"]["targets"]
        expected = "slow" if entry["name"] == "int16x8" else "runs"
        assert targets and all(t["verdict"] == expected for t in targets), entry["name"]
        if entry["name"] == "int16x8":
            assert targets[0]["xnnpack"]["delegated"] == 0


@pytest.mark.parametrize("given, message", [
    ([], "give a run directory"),
    (["nowhere"], "no such file"),
    (["README.md"], "not a .tflite or .onnx file"),
])
def test_check_refuses_bad_targets_in_one_line(given, message, capsys):
    assert main(["check", "--this-machine", *given]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_device_state_reads_frequencies_and_temperatures(tmp_path):
    cpu = tmp_path / "cpu"
    for core, (now, top) in enumerate([(1500000, 1800000), (600000, 1800000)]):
        freq = cpu / f"cpu{core}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_governor").write_text("ondemand\n")
        (freq / "scaling_cur_freq").write_text(f"{now}\n")
        (freq / "cpuinfo_max_freq").write_text(f"{top}\n")
    thermal = tmp_path / "thermal" / "thermal_zone0"
    thermal.mkdir(parents=True)
    (thermal / "type").write_text("cpu-thermal\n")
    (thermal / "temp").write_text("61850\n")
    assert device_state.cpu_frequencies(cpu) == [
        {"core": 0, "governor": "ondemand", "current_mhz": 1500, "max_mhz": 1800},
        {"core": 1, "governor": "ondemand", "current_mhz": 600, "max_mhz": 1800}]
    assert device_state.temperatures(tmp_path / "thermal") == {"cpu-thermal": 61.85}

    before = {"cpu_frequencies": device_state.cpu_frequencies(cpu),
              "temperatures_c": {"cpu-thermal": 61.85}, "throttled": "0x0"}
    after = {"cpu_frequencies": [{"core": 0, "current_mhz": 1000}, {"core": 1,
                                                                     "current_mhz": 600}],
             "temperatures_c": {"cpu-thermal": 79.4}, "throttled": "0x20002"}
    said = device_state.changes({"before": before, "after": after})
    assert said == ["cpu-thermal warmed from 61.9 to 79.4 °C during the run",
                    "CPU frequency dropped during the run (core 0 1500 -> 1000 MHz)",
                    "the Pi reports throttling (vcgencmd get_throttled: 0x20002)"]
    text = " ".join(device_state.describe({"before": before, "after": after}))
    assert "ondemand" in text and "**During the run:**" in text


def test_a_machine_without_thermal_zones_or_cpufreq_says_so(tmp_path):
    assert device_state.temperatures(tmp_path / "missing") == {}
    assert device_state.cpu_frequencies(tmp_path / "missing") == []
    empty = {"cpu_frequencies": [], "temperatures_c": {}, "throttled": None}
    lines = device_state.describe({"before": empty, "after": empty, "emulated": None})
    assert lines == ["CPU frequency: not readable here (no cpufreq in /sys).",
                     "Temperature: no sensor here (no /sys/class/thermal zone).",
                     "No warming, frequency drop or throttling measured during the run."]


def test_emulation_is_told_by_the_kernels_cpu_description(tmp_path, monkeypatch):
    (tmp_path / "modalias").write_text("cpu:type:x86,ven0002fam0019mod0001:feature:,0000\n")
    monkeypatch.setattr(device_state.platform, "machine", lambda: "aarch64")
    assert "emulated" in device_state.emulation(tmp_path)
    monkeypatch.setattr(device_state.platform, "machine", lambda: "x86_64")
    assert device_state.emulation(tmp_path) is None


def report_of(path: Path, rows: list[dict], cpu: str = "host") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": {"cpu": cpu, "machine": "x86_64", "cores": 2,
                                                "command": "edgekit bench X"}, "rows": rows}))
    return path


def row(variant, sha, latency, runtime="ai-edge-litert", accuracy=0.8):
    return {"variant": variant, "sha256": sha, "runtime": runtime, "threads": 1, "tta": "none",
            "error": None, "latency_median_ms": latency, "accuracy": accuracy,
            "cold_start_ms": 10.0, "peak_rss_mb": 60.0}


def test_compare_matches_rows_by_file_and_shows_both_sides(tmp_path, capsys):
    host = report_of(tmp_path / "host" / "report" / "benchmark.json",
                     [row("int8", "a" * 64, 0.05), row("float32", "b" * 64, 0.1)])
    device = report_of(tmp_path / "pi" / "benchmark.json",
                       [row("int8", "a" * 64, 2.0, accuracy=0.75)], cpu="Cortex-A76")
    assert main(["compare", str(tmp_path / "host"), str(device), "--out",
                 str(tmp_path / "compare.md")]) == 0
    out = capsys.readouterr().out
    assert "| int8 | ai-edge-litert | 1 | 80.00 | 75.00 | 0.0500 | 2.0000 | 40.00x |" in out
    assert "float32" not in out.split("|---|")[-1]  # measured on one side only
    assert (tmp_path / "compare.md").read_text() == out
    pairs = matched_rows(read_report(host), read_report(device))
    assert [(a["variant"], b["latency_median_ms"]) for a, b in pairs] == [("int8", 2.0)]


@pytest.mark.parametrize("device_rows, message", [
    ([row("int8", "c" * 64, 2.0)], "different files (int8 is aaaaaaaaaaaa"),
    ([row("other", "c" * 64, 2.0)], "different files (no file in common)"),
    ([{k: v for k, v in row("int8", "a" * 64, 2.0).items() if k != "sha256"}], "no sha256"),
])
def test_compare_refuses_reports_of_different_files(tmp_path, capsys, device_rows, message):
    host = report_of(tmp_path / "host.json", [row("int8", "a" * 64, 0.05)])
    device = report_of(tmp_path / "device.json", device_rows)
    assert main(["compare", str(host), str(device)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_compare_refuses_what_is_not_a_report(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["compare", str(tmp_path / "bad.json"), str(tmp_path / "nothing")]) == 2
    assert "not a benchmark report" in capsys.readouterr().err

