"""``edgekit bench`` and ``edgekit pipeline`` on the tiny converted run: every report file, one
row per variant and setting with sane values, error rows for broken input, and a resumable
pipeline end to end."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.manifest import file_sha256
from edgekit.benchmarks.bench import classes_in_turn, plain_variant, tta_variant
from edgekit.benchmarks.settings import BenchSettings
from edgekit.cli import build_parser, main
from edgekit.convert.settings import ConvertSettings
from edgekit.pipeline import pipeline_settings

from conftest import LABELS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

QUICK = ["--rounds", "2", "--latency-seconds", "0.05", "--batch", "8", "--threads", "1"]
REPORT_FILES = {"benchmark.json", "benchmark.csv", "REPORT.md", "latency.png",
                "accuracy_vs_size.png", "accuracy_vs_latency.png"}


def copy_run(converted_run, tmp_path, keep=None):
    run, _, manifest = converted_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    if keep is not None:
        manifest = {**manifest, "variants": [v for v in manifest["variants"] if v["name"] in keep]}
        (copy / "artifacts" / "manifest.json").write_text(json.dumps(manifest))
    return copy, manifest


def data_with_classes(converted_run, tmp_path, names):
    """A copy of the run's data with its class folders renamed to ``names``, in class order."""
    data = tmp_path / "data"
    shutil.copytree(converted_run[0].parent / "data", data)
    for part in ("train", "test"):
        for old, new in zip(LABELS, names):
            (data / part / old).rename(data / part / new)
    return data


def read_report(run):
    report = json.loads((run / "report" / "benchmark.json").read_text())
    with open(run / "report" / "benchmark.csv") as handle:
        return report, list(csv.DictReader(handle))


def test_bench_measures_every_variant_against_keras(converted_run, tmp_path, monkeypatch):
    run, manifest = copy_run(converted_run, tmp_path)
    assert main(["bench", str(run), *QUICK]) == 0
    assert REPORT_FILES <= {p.name for p in (run / "report").iterdir()}
    report, csv_rows = read_report(run)
    rows = report["rows"]
    expected = [("keras", "keras-call"), ("keras", "keras-predict")] + [
        (v["name"], "onnxruntime" if v["format"] == "onnx" else "ai-edge-litert")
        for v in manifest["variants"]]
    assert [(r["variant"], r["runtime"]) for r in rows] == expected
    assert len(csv_rows) == len(rows)
    for row in rows:
        assert row["error"] is None, row
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["agreement"] <= 1.0
        assert row["threads"] == 1
        path = run / ("model.keras" if row["variant"] == "keras" else f"artifacts/{row['file']}")
        assert row["bytes"] == path.stat().st_size and 0 < row["gzip_bytes"]
        for key in ("latency_median_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
                    "cold_start_ms", "throughput_images_per_s"):
            assert row[key] > 0, key
        assert row["latency_median_ms"] <= row["latency_p90_ms"] <= row["latency_p99_ms"]
        assert row["rss_before_load_mb"] < row["peak_rss_mb"] < 4000
        assert len(row["per_class"]) == 3
        if row["variant"] != "keras":
            assert row["speedup_vs_keras_call"] > 0 and row["speedup_vs_keras_predict"] > 0
    keras = rows[0]
    assert keras["accuracy"] == pytest.approx(report["keras_accuracy"])
    assert report["environment"]["cores"] >= 1 and "numpy" in report["environment"]["versions"]
    markdown = (run / "report" / "REPORT.md").read_text()
    flags = report["environment"]["int8_dot_product"]
    assert (f", int8 dot product: {', '.join(flags) or 'none'}, " in markdown
            if flags is not None else "int8 dot product" not in markdown)
    for variant in manifest["variants"]:
        assert f"| {variant['name']} |" in markdown
    assert "![latency](latency.png)" in markdown
    assert "- Fastest at 1 thread: **" in markdown and "## Speed at 1 thread\n" in markdown
    # The fastest file's accuracy is in its headline too: the fastest may be the least accurate.
    fastest = next(line for line in markdown.splitlines() if line.startswith("- Fastest"))
    assert re.search(r", test accuracy \d+\.\d\d% \([+-]\d+\.\d\d points against Keras\)\.$",
                     fastest), fastest
    # The real edgekit classify command scores the test folder as the benchmark did, also when
    # started in a folder whose own train.py the child process once imported for edgekit's.
    from tools.classify_accuracy import main as classify_accuracy

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("raise SystemExit('the user train.py ran')\n")

    test_folder = converted_run[0].parent / "data" / "test"
    assert classify_accuracy([str(run), str(test_folder), "--variants", "int8,onnx-float32"]) == 0


def test_broken_artifacts_become_error_rows(converted_run, tmp_path, capsys):
    run, manifest = copy_run(converted_run, tmp_path, keep={"float32", "int8", "onnx-float32"})
    # Class names of a user's own folders may hold spaces (the report once split them apart
    # and crashed on its per-class table).
    names = ["chat noir", "red apple", "自行车"]
    (run / "labels.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    data = data_with_classes(converted_run, tmp_path, names)
    (run / "artifacts" / "model_float32.tflite").unlink()
    (run / "artifacts" / "model_int8.tflite").write_bytes(b"garbage")
    assert main(["bench", str(run), "--data", str(data), *QUICK]) == 1
    rows = {r["variant"]: r for r in read_report(run)[0]["rows"]}
    assert "missing" in rows["float32"]["error"]
    assert "sha256" in rows["int8"]["error"]
    assert rows["onnx-float32"]["error"] is None and rows["onnx-float32"]["latency_median_ms"] > 0
    out = capsys.readouterr().out
    assert "failed: float32" in out and "failed: int8" in out
    assert read_report(run)[0]["labels"] == names
    assert "| red apple | " in (run / "report" / "REPORT.md").read_text(encoding="utf-8")


def test_tta_flip_adds_a_measured_row_per_file(converted_run, tmp_path):
    from edge_runtime.classifier import Classifier

    run, _ = copy_run(converted_run, tmp_path, keep={"int8", "onnx-float32"})
    assert main(["bench", str(run), *QUICK, "--tta", "flip"]) == 0
    report, csv_rows = read_report(run)
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == {"keras", "int8", "int8+flip", "onnx-float32", "onnx-float32+flip"}
    assert report["settings"]["tta"] == ["none", "flip"]
    test_images = sorted((converted_run[0].parent / "data" / "test").rglob("*.png"))
    for name in ("int8", "onnx-float32"):
        plain, flipped = rows[name], rows[name + "+flip"]
        assert (plain["tta"], flipped["tta"]) == ("none", "flip")
        assert flipped["file"] == plain["file"] and flipped["error"] is None
        assert flipped["latency_median_ms"] > 0 and flipped["peak_rss_mb"] > 0
        # the accuracy the runtime gives with the mirror image averaged in, image by image
        classifier = Classifier(run / "artifacts" / flipped["file"], tta="flip")
        correct = [classifier.classify(p).label == p.parent.name for p in test_images]
        assert flipped["accuracy"] == pytest.approx(sum(correct) / len(correct))
    assert {r["tta"] for r in csv_rows} == {"none", "flip"}
    assert "`<variant>+flip`" in (run / "report" / "REPORT.md").read_text()


def test_tta_row_names_map_back_to_the_manifest_variant():
    assert tta_variant("int8", "none") == "int8"
    assert tta_variant("int8", "flip") == "int8+flip"
    assert plain_variant("int8+flip", "flip") == "int8"
    assert plain_variant("qat-int8-per-tensor", "none") == "qat-int8-per-tensor"


def test_relative_run_directory_and_a_test_limit(converted_run, tmp_path, monkeypatch):
    # The workers start in the user's folder, with a relative path; a benchmarks/ package of
    # the user's own there is not the one they import.
    run, _ = copy_run(converted_run, tmp_path, keep={"int8"})
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__init__.py").write_text("raise SystemExit('user package')\n")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "run", *QUICK, "--test-limit", "2"]) == 0
    report = read_report(run)[0]
    assert {r["variant"] for r in report["rows"]} == {"keras", "int8"}
    assert all(r["error"] is None for r in report["rows"])
    # The limit takes the classes in turn: the first image of class0, then of class1 (the
    # first 2 of the folder, read class by class, were both class0's: one class's accuracy).
    # Fewer images than classes leave class2 without a figure (the per-class table once
    # indexed past the classes the images held, a traceback).
    assert report["test_images"] == 2
    for row in report["rows"]:
        assert row["per_class"][2] is None and None not in row["per_class"][:2]
    assert "| class2 | - | - |" in (run / "report" / "REPORT.md").read_text()


def test_a_test_limit_takes_the_classes_in_turn():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])  # read class by class, of uneven sizes
    assert classes_in_turn(labels, 4).tolist() == [0, 1, 3, 5]
    assert labels[classes_in_turn(labels, 7)].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert classes_in_turn(labels, None).tolist() == classes_in_turn(labels, 99).tolist() == \
        list(range(9))


def test_tflite_runtime_in_another_python(converted_run, tmp_path, pi_python, monkeypatch):
    run, _ = copy_run(converted_run, tmp_path, keep={"int8"})
    monkeypatch.chdir(tmp_path)  # both paths relative to a folder other than the repository
    assert main(["bench", "run", *QUICK, "--tflite-runtime-python",
                 os.path.relpath(pi_python, tmp_path)]) == 0
    rows = {r["runtime"]: r for r in read_report(run)[0]["rows"] if r["variant"] == "int8"}
    assert set(rows) == {"ai-edge-litert", "tflite-runtime"}
    litert, old = rows["ai-edge-litert"], rows["tflite-runtime"]
    assert old["error"] is None and old["latency_median_ms"] > 0 and old["peak_rss_mb"] > 0
    assert old["accuracy"] == litert["accuracy"] and old["agreement"] == litert["agreement"]


def test_a_run_without_artifacts_still_measures_keras(converted_run, tmp_path):
    run, _ = copy_run(converted_run, tmp_path)
    shutil.rmtree(run / "artifacts")
    assert main(["bench", str(run), *QUICK]) == 1
    rows = read_report(run)[0]["rows"]
    assert [r["runtime"] for r in rows if r["error"] is None] == ["keras-call", "keras-predict"]
    assert "run edgekit convert" in rows[-1]["error"]


def test_bench_user_errors(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == (f"edgekit: error: {tmp_path / 'nope'}: no such run "
                                       "directory\n")
    (tmp_path / "model.keras").write_bytes(b"")
    assert main(["bench", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"edgekit: error: {tmp_path}: not a finished run directory "
                                       "(config.json, labels.txt missing)\n")
    (tmp_path / "stopped.partial").mkdir()
    assert main(["bench", str(tmp_path / "stopped")]) == 2
    assert capsys.readouterr().err == (
        f"edgekit: error: {tmp_path / 'stopped'}: its training has not finished "
        f"({tmp_path / 'stopped.partial'} holds it): edgekit train --resume --out "
        f"{tmp_path / 'stopped'}\n")
    for name in ("config.json", "labels.txt"):  # bad flags are refused before the files are read
        (tmp_path / name).write_text("")
    assert main(["bench", str(tmp_path), "--threads", "two"]) == 2
    assert "--threads" in capsys.readouterr().err
    for flags, message in ((["--test-limit", "0"], "--test-limit must be at least 1, got 0"),
                           (["--latency-seconds", "-1"], "--latency-seconds must be positive"),
                           (["--tflite-runtime-python", str(tmp_path / "python9")],
                            "no such Python executable")):
        assert main(["bench", str(tmp_path), *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "report").exists()


def runtime_accuracy(model: Path, folder: Path) -> float:
    """The share of images below ``folder`` that the runtime's Classifier puts in the class
    their folder names."""
    from edge_runtime.classifier import Classifier

    classifier = Classifier(model)
    images = sorted(folder.rglob("*.png"))
    return sum(classifier.classify(p).label == p.parent.name for p in images) / len(images)


def test_converted_files_alone_are_measured(converted_run, tmp_path, capsys):
    # RUN_DIR/artifacts alone: every file through its runtimes, no Keras rows, accuracy on the
    # labelled images of --data (a training tree: its test/ folder is taken).
    run, manifest = copy_run(converted_run, tmp_path, keep={"float32", "int8", "onnx-float32"})
    artifacts, data = run / "artifacts", converted_run[0].parent / "data"
    assert main(["bench", str(artifacts), "--data", str(data), *QUICK]) == 0
    report, csv_rows = read_report(artifacts)
    rows = {r["variant"]: r for r in report["rows"]}
    assert [(r["variant"], r["runtime"]) for r in report["rows"]] == [
        ("float32", "ai-edge-litert"), ("int8", "ai-edge-litert"),
        ("onnx-float32", "onnxruntime")]
    assert report["keras_accuracy"] is None and report["test_images"] == 12
    for row in report["rows"]:
        assert row["error"] is None and row["latency_median_ms"] > 0 and row["peak_rss_mb"] > 0
        assert row["accuracy"] == pytest.approx(
            runtime_accuracy(artifacts / row["file"], data / "test"))
        assert "agreement" not in row and "speedup_vs_keras_call" not in row
    # Each file is timed against the float32 file of its format, round by round.
    assert rows["int8"]["speedup_vs_float32_min"] <= rows["int8"]["speedup_vs_float32"] \
        <= rows["int8"]["speedup_vs_float32_max"] and rows["int8"]["speedup_vs_float32"] > 0
    assert "speedup_vs_float32" not in rows["float32"] | rows["onnx-float32"]
    assert float(csv_rows[1]["speedup_vs_float32"]) == rows["int8"]["speedup_vs_float32"]
    assert len(csv_rows) == 3 and not (run / "report").exists()
    markdown = (artifacts / "report" / "REPORT.md").read_text()
    assert "test accuracy on 12 labelled images of" in markdown
    assert re.search(r"\| int8 \| ai-edge-litert \| .* \| \d+\.\dx \[\d+\.\d, \d+\.\d\] \|", markdown)
    assert "| float32 | ai-edge-litert |" in markdown and "| reference |" in markdown
    for compared in ("against Keras", "vs Keras", "vs model(x)", "model.keras"):
        assert compared not in markdown
    assert {p.name for p in (artifacts / "report").glob("*.png")} == {
        "latency.png", "accuracy_vs_size.png", "accuracy_vs_latency.png"}
    # Without --data: sizes and speed; the accuracy pictures of the run before are removed.
    assert main(["bench", str(artifacts), *QUICK]) == 0
    report, _ = read_report(artifacts)
    assert report["test_images"] == 0 and all("accuracy" not in r for r in report["rows"])
    markdown = (artifacts / "report" / "REPORT.md").read_text()
    assert "accuracy not measured (give --data" in markdown and "## Size\n" in markdown
    assert [p.name for p in (artifacts / "report").glob("*.png")] == ["latency.png"]
    assert "![accuracy vs size]" not in markdown


def test_thread_counts_follow_the_cores_this_process_may_use(converted_run, tmp_path, capsys,
                                                             monkeypatch):
    # Pinned to one core (taskset, a container's cpuset) on a machine of more: the default
    # asked for the machine's count, and the timings measured threads fighting for one core.
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this OS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert BenchSettings().threads == (1,)
    run, _ = copy_run(converted_run, tmp_path, keep={"int8"})
    artifacts = run / "artifacts"
    quick = ["--rounds", "1", "--latency-seconds", "0.05", "--batch", "8"]
    assert main(["bench", str(artifacts), *quick, "--threads", "1,2"]) == 0
    assert ("warning: --threads 2 is more than the 1 core this process may use: those timings "
            "are of threads sharing cores") in capsys.readouterr().err
    report, _ = read_report(artifacts)
    assert report["environment"]["usable_cores"] == 1
    assert "(4 cores, 1 usable by the benchmark," in (artifacts / "report" / "REPORT.md").read_text()


def test_converted_files_on_a_pi_like_python(converted_run, tmp_path, pi_python):
    # What a Pi has: the int8 file and the manifest copied over, numpy<2, tflite-runtime and
    # pillow; no TensorFlow, Keras, tqdm, matplotlib or onnxruntime.
    run, _ = copy_run(converted_run, tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model_int8.tflite", "manifest.json"):
        shutil.copy(run / "artifacts" / name, models / name)
    data = converted_run[0].parent / "data" / "test"
    # --test-limit 3 takes the first image of each of the 3 classes (it once took class0's).
    firsts = tmp_path / "firsts"
    for folder in sorted(data.iterdir()):
        (firsts / folder.name).mkdir(parents=True)
        shutil.copy(sorted(folder.glob("*.png"))[0], firsts / folder.name)
    result = subprocess.run(
        [pi_python, "-c", "import sys; del sys.path[0]; from edgekit.cli import main; "
         "sys.exit(main())", "bench", "models", "--data", str(data), "--test-limit", "3",
         *QUICK],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report, _ = read_report(models)
    [row] = report["rows"]
    assert (row["variant"], row["runtime"], row["error"]) == ("int8", "tflite-runtime", None)
    assert row["latency_median_ms"] > 0 and report["test_images"] == 3
    assert None not in row["per_class"]
    assert row["accuracy"] == pytest.approx(runtime_accuracy(models / "model_int8.tflite",
                                                             firsts))
    why = {n["variant"]: n["why"] for n in report["not_measured"]}
    assert why["float32"] == "model_float32.tflite is not in models"
    assert "not measured: float32: model_float32.tflite is not in models" in result.stdout
    markdown = (models / "report" / "REPORT.md").read_text()
    assert "None: matplotlib is not installed here" in markdown
    assert "| float32 | model_float32.tflite is not in models |" in markdown
    assert not list((models / "report").glob("*.png"))


def test_converted_files_user_errors(converted_run, tmp_path, capsys):
    run, _ = copy_run(converted_run, tmp_path, keep={"int8"})
    artifacts = run / "artifacts"
    other = data_with_classes(converted_run, tmp_path, ["class0", "class1", "ship"])
    only_train = tmp_path / "only_train"
    shutil.copytree(other / "train", only_train / "Train")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(artifacts / "model_int8.tflite", bare)
    unlabelled = tmp_path / "unlabelled"  # a manifest edited by hand: a KeyError before
    shutil.copytree(artifacts, unlabelled)
    manifest = json.loads((unlabelled / "manifest.json").read_text())
    del manifest["labels"]
    (unlabelled / "manifest.json").write_text(json.dumps(manifest))
    junk = tmp_path / "junk"  # no readable image: accuracies of nothing (NaN) before
    (junk / "class1").mkdir(parents=True)
    (junk / "class1" / "a.png").write_bytes(b"not a png")
    for target, flags, message in (
            (unlabelled, [], f"{unlabelled / 'manifest.json'}: no labels or input size (no "
                             "'labels')"),
            (artifacts, ["--data", str(junk)], "--data: none of its 1 images could be read "
                                               f"(first: {junk / 'class1' / 'a.png'}: not a "),
            (artifacts / "model_int8.tflite", [], "is a model file: give the folder that holds "
                                                 "it and its manifest.json"),
            (bare, [], f"{bare} holds model files but no manifest.json: copy "
                       "RUN_DIR/artifacts/manifest.json beside them"),
            (artifacts, ["--data", str(other)], f"--data {other / 'test'}: class folder(s) ship "
                                                "are not among the model's classes"),
            (artifacts, ["--data", str(only_train)], "holds training images but no test/ "
                                                     "folder"),
            (artifacts, ["--data", str(tmp_path / "nope")], "no such folder")):
        assert main(["bench", str(target), *flags, *QUICK]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (artifacts / "report").exists()


def test_a_second_benchmark_of_the_same_folder_at_once_is_refused(converted_run, tmp_path,
                                                                  capsys):
    # Two benchmarks at once time each other's load, and the later one's report is kept.
    from edgekit.common.folder_lock import FolderLock

    run, _ = copy_run(converted_run, tmp_path, keep={"int8"})
    for target in (run, run / "artifacts"):
        with FolderLock() as other:
            other.take(target)
            assert main(["bench", str(target), *QUICK]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"edgekit: error: {target} is in use by another edgekit command right now: wait "
            "for it to end, or stop it first")
        assert not (target / "report").exists()


def test_data_of_other_classes_is_refused(converted_run, tmp_path, capsys):
    # --data whose classes are not the model's would give accuracies without a meaning.
    run, _ = copy_run(converted_run, tmp_path)
    data = data_with_classes(converted_run, tmp_path, ["class0", "class1", "ship"])
    assert main(["bench", str(run), "--data", str(data), *QUICK]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: classes of {data} (class0, class1, ship) differ from the model's "
        "(class0, class1, class2)")
    assert not (run / "report").exists()


def test_artifacts_of_another_model_are_refused(converted_run, tmp_path, capsys):
    # model.keras replaced after the conversion: every "vs Keras" figure would compare files
    # with a model they were not made from.
    run, _ = copy_run(converted_run, tmp_path)
    with open(run / "model.keras", "ab") as handle:
        handle.write(b"\0")
    assert main(["bench", str(run), *QUICK]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: {run / 'artifacts' / 'manifest.json'}: its files were converted from "
        f"another model.keras than {run}'s: run edgekit convert {run} again")
    assert not (run / "report").exists()


def test_pipeline_converts_a_run_trained_elsewhere(converted_run, tmp_path, capsys):
    # Without --data, convert and bench read the data the run was trained on; a run trained
    # on another machine stores that machine's data path, which --data replaces.
    run, _, _ = converted_run
    copy = tmp_path / "the run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("artifacts", "report"))
    quick = ["--variants", "float32", "--calibration-size", "20", "--threads", "1",
             "--rounds", "1"]
    assert main(["pipeline", "--out", str(copy), *quick]) == 0
    out = capsys.readouterr().out
    assert "[1/3] train: already done" in out and "--data" not in out
    # Each stage says what it does, the run's path spaces and all.
    assert f"[2/3] convert: float32 -> {copy}/artifacts\n" in out
    config = json.loads((copy / "config.json").read_text())
    data_here = config["settings"]["data"]
    config["settings"]["data"] = str(tmp_path / "gone" / "on-the-gpu-box")
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["pipeline", "--out", str(copy), "--redo", "convert", *quick]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["pipeline", "--data", data_here, "--out", str(copy), "--redo", "convert",
                 *quick]) == 0
    rows = json.loads((copy / "report" / "benchmark.json").read_text())["rows"]
    assert {r["variant"] for r in rows} == {"keras", "float32"}
    capsys.readouterr()
    # A stage's damaged output reads as missing: the stage runs again and rewrites it (the
    # pipeline ended in a traceback); bench refuses a damaged manifest in one line.
    here = ["pipeline", "--data", data_here, "--out", str(copy), *quick]
    (copy / "report" / "benchmark.json").write_text("{not json")
    assert main(here) == 0
    out = capsys.readouterr().out
    assert out.count("already done, skipped") == 2 and "[3/3] bench: done" in out
    (copy / "artifacts" / "manifest.json").write_text('{"variants": 3}')
    assert main(["bench", str(copy), "--data", data_here, *QUICK]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: {copy / 'artifacts' / 'manifest.json'}: unreadable manifest (its "
        "variants are not a list of entries with a name and a file); fix or remove it")
    assert main(here) == 0
    assert "[2/3] convert: done" in capsys.readouterr().out
    assert "error" not in json.loads((copy / "artifacts" / "manifest.json").read_text())[
        "variants"][0]


def test_pipeline_converts_only_what_an_interrupted_conversion_left(converted_run, tmp_path,
                                                                     capsys):
    copy, manifest = copy_run(converted_run, tmp_path, keep={"float32"})  # int8 never made
    float32 = copy / "artifacts" / next(v["file"] for v in manifest["variants"])
    float32_written = float32.stat().st_mtime_ns
    # --calibration-size as float32 was made with (the fixture's), so float32 is kept.
    assert main(["pipeline", "--out", str(copy), "--variants", "float32,int8",
                 "--calibration-size", "30", "--threads", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"[2/3] convert: int8 -> {copy}/artifacts\n" in out
    assert float32.stat().st_mtime_ns == float32_written
    names = [v["name"] for v in json.loads((copy / "artifacts" / "manifest.json").read_text())
             ["variants"] if "error" not in v]
    assert sorted(names) == ["float32", "int8"]


def test_pipeline_converts_again_a_variant_whose_file_is_damaged_or_gone(converted_run,
                                                                         tmp_path, capsys):
    # The manifest listed both as done, so the pipeline skipped conversion and benchmarked
    # (or failed on) files that were no longer the ones converted.
    copy, manifest = copy_run(converted_run, tmp_path, keep={"float32", "int8"})
    files = {v["name"]: copy / "artifacts" / v["file"] for v in manifest["variants"]}
    quick = ["--out", str(copy), "--variants", "float32,int8", "--calibration-size", "30",
             "--threads", "1", "--rounds", "1"]
    assert main(["pipeline", *quick]) == 0
    capsys.readouterr()
    for damage in (lambda path: path.write_bytes(path.read_bytes()[:300]), Path.unlink):
        damage(files["int8"])
        assert main(["pipeline", *quick]) == 0
        out = capsys.readouterr().out
        assert f"[2/3] convert: int8 -> {copy}/artifacts\n" in out
        assert "[3/3] bench: done" in out
        entry = next(v for v in json.loads((copy / "artifacts" / "manifest.json").read_text())
                     ["variants"] if v["name"] == "int8")
        assert file_sha256(files["int8"]) == entry["sha256"]


def test_ctrl_c_in_a_stage_stops_the_whole_pipeline(converted_run, tmp_path, capsys,
                                                    monkeypatch):
    import edgekit.convert.cli

    def interrupted(run_dir, settings, device_check=True):
        raise KeyboardInterrupt  # as Ctrl-C during the conversion would

    copy, _ = copy_run(converted_run, tmp_path)
    monkeypatch.setattr(edgekit.convert.cli, "convert_and_report", interrupted)
    assert main(["pipeline", "--out", str(copy), "--redo", "convert", "--threads", "1"]) == 130
    captured = capsys.readouterr()
    assert "[2/3] convert" in captured.out and "[3/3] bench" not in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        "edgekit: interrupted; the same command resumes where it stopped")
    assert not (copy / "report").exists()


def test_pipeline_stages_run_some_stages_only(converted_run, tmp_path, capsys):
    # Train and convert on one machine (or beside other work), benchmark later, alone.
    copy, _ = copy_run(converted_run, tmp_path, keep={"float32"})
    quick = ["--out", str(copy), "--variants", "float32,int8", "--calibration-size", "30",
             "--threads", "1", "--rounds", "1"]
    assert main(["pipeline", *quick, "--stages", "train,convert"]) == 0
    out = capsys.readouterr().out
    assert "[1/3] train: already done" in out and "[2/3] convert: done" in out
    assert "[3/3]" not in out and not (copy / "report").exists()
    assert out.strip().splitlines()[-1].endswith(
        f"{copy}/ (model.keras, metrics and pictures), {copy}/artifacts/ (variants, "
        "manifest.json)")
    assert main(["pipeline", *quick, "--stages", "bench"]) == 0
    out = capsys.readouterr().out
    assert "[1/3]" not in out and "[2/3]" not in out and "[3/3] bench: done" in out
    rows = json.loads((copy / "report" / "benchmark.json").read_text())["rows"]
    assert {r["variant"] for r in rows} >= {"float32", "int8"}


@pytest.mark.parametrize("flags, message", [
    (["--variants", "int9"], "unknown --variants int9"),
    (["--qat-epochs", "0"], "--qat-epochs must be at least 1, got 0"),
    (["--calibration-size", "0"], "--calibration-size must be at least 1, got 0"),
    (["--threads", "two"], "--threads must be comma-separated integers"),
    (["--rounds", "0"], "--rounds must be at least 1, got 0"),
    (["--stages", "train,test"], "unknown --stages stage test; choose from train, convert, bench"),
    (["--stages", ","], "--stages names no stage"),
    (["--stages", "train,convert", "--redo", "bench"],
     "--redo bench is not among --stages train,convert"),
])
def test_pipeline_refuses_bad_later_stage_flags_before_training(tiny_tree, cache_dir, tmp_path,
                                                                 capsys, flags, message):
    # A typo that convert or bench would refuse must not surface after an hour of training.
    run = tmp_path / "run"
    assert main(["pipeline", "--data", str(tiny_tree), "--out", str(run), *flags]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err[-1].startswith("edgekit: error:") and message in err[-1]
    assert "[1/3] train" not in captured.out
    assert not run.exists() and not (tmp_path / "run.partial").exists()


def test_the_pipeline_passes_every_stage_flag_on(tmp_path):
    # Every flag of train, convert and bench reaches its stage's settings, switches included,
    # --seed both stages that take one; only where the data and the run are, and
    # resume/overwrite (the pipeline's own decisions), are not the stages' flags.
    args = build_parser().parse_args([
        "pipeline", "--out", str(tmp_path / "r"), "--image-size", "96", "--no-cache", "--lr",
        "1e-3", "--label-smoothing", "0", "--seed", "3", "--tensorboard", "--probe-size", "50",
        "--no-fold-batchnorm", "--latency-seconds", "0.1", "--variants", "int8"])
    settings = pipeline_settings(args)
    train = settings.train
    assert (train.data, train.out, train.image_size, train.cache_dir, train.seed) == \
        ("cifar10", str(tmp_path / "r"), 96, None, 3)
    assert train.tensorboard and train.recipe.learning_rate == 1e-3
    assert train.recipe.label_smoothing == 0 and settings.train_given
    assert settings.convert == ConvertSettings(variants=("int8",), probe_size=50, seed=3,
                                               fold_batchnorm=False)
    assert settings.convert_given == {"variants", "probe_size", "seed", "fold_batchnorm"}
    assert (settings.bench.latency_seconds, settings.bench.throughput_seconds) == (0.1, 0.1)
    assert settings.bench.rounds == BenchSettings().rounds

    def flags(command: str) -> set[str]:
        result = subprocess.run([sys.executable, "-m", "edgekit.cli", command, "--help"],
                                capture_output=True, text=True, cwd=REPO)
        return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout)) - {"--help"}

    pipeline_flags = flags("pipeline")
    for stage in ("train", "convert", "bench"):
        assert flags(stage) - pipeline_flags <= {"--resume", "--overwrite"}, stage


def test_redo_stages_are_read_as_variants_are(tmp_path):
    # "convert, bench" used to be refused: "unknown --redo stage  bench" (a leading space).
    args = build_parser().parse_args(["pipeline", "--out", str(tmp_path / "run"),
                                      "--redo", "convert, bench,"])
    assert pipeline_settings(args).redo == {"convert", "bench"}


def test_pipeline_end_to_end_and_resumable(tiny_tree, cache_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["pipeline", "--data", str(tiny_tree), "--out", str(run), "--epochs", "2",
            "--batch-size", "8", "--val-fraction", "0.25", "--image-size", "24",
            "--variants", "float32,int8", "--calibration-size", "20", "--threads", "1",
            "--rounds", "1"]
    assert main(argv) == 0
    assert (run / "model.keras").is_file()
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    assert manifest["input"]["image_size"] == 24  # a user's own image size, end to end
    assert REPORT_FILES <= {p.name for p in (run / "report").iterdir()}
    rows = json.loads((run / "report" / "benchmark.json").read_text())["rows"]
    assert {r["variant"] for r in rows} == {"keras", "float32", "int8"}
    capsys.readouterr()

    # Everything current: nothing redone, and Keras not even imported (a resumed study runs
    # this for every finished cell, which took 5 s each on a 2-core CPU with the import).
    code = ("import sys; from edgekit.cli import main; code = main(sys.argv[1:]); "
            "sys.exit(99 if {'keras', 'tensorflow'} & set(sys.modules) else code)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("already done, skipped") == 3

    report_time = (run / "report" / "benchmark.json").stat().st_mtime
    assert main(argv + ["--redo", "bench"]) == 0
    out = capsys.readouterr().out
    assert out.count("already done, skipped") == 2
    assert (run / "report" / "benchmark.json").stat().st_mtime > report_time
    assert main(argv + ["--redo", "deploy"]) == 2
    capsys.readouterr()

    # Other train flags on the same --out: refused, not "already done" with the old model.
    model_time = (run / "model.keras").stat().st_mtime
    other = [flag if flag != "2" else "3" for flag in argv] + ["--arch", "ds_cnn"]
    assert main(other) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: {run} was trained with other settings than asked (arch seed_cnn, "
        "asked ds_cnn; epochs 2, asked 3): pass --redo train to train it again with these, or "
        "choose another --out")
    assert (run / "model.keras").stat().st_mtime == model_time
    # Flags equal to the run's own, given or not, take it as it is.
    assert main(argv + ["--arch", "seed_cnn", "--seed", "0"]) == 0
    assert capsys.readouterr().out.count("already done, skipped") == 3
    # Conversion and benchmark flags the outputs record otherwise: those stages run again
    # (not "already done" with the old files), and the same command then finds them done.
    other_stages = [{"20": "16", "--rounds": "--rounds"}.get(flag, flag) for flag in argv]
    other_stages[other_stages.index("--rounds") + 1] = "2"
    assert main(other_stages) == 0
    out = capsys.readouterr().out
    assert "[2/3] convert: made with other settings than asked (calibration-size 20, asked " \
           "16), so it runs again" in out
    assert out.count("already done, skipped") == 1  # train only; bench follows convert
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    assert {v["settings"]["calibration_size"] for v in manifest["variants"]} == {16}
    assert json.loads((run / "report" / "benchmark.json").read_text())["settings"]["rounds"] == 2
    assert main(other_stages) == 0
    assert capsys.readouterr().out.count("already done, skipped") == 3
    assert main(other_stages[:-1] + ["1"]) == 0  # --rounds 1: the benchmark alone again
    out = capsys.readouterr().out
    assert "[3/3] bench: made with other settings than asked (rounds 2, asked 1)" in out
    assert out.count("already done, skipped") == 2
    # So is an interrupted run that would be resumed with its own settings, not these.
    stopped = tmp_path / "stopped"
    shutil.copytree(run, tmp_path / "stopped.partial")
    assert main([str(stopped) if flag == str(run) else flag for flag in other[:-2]]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: the interrupted run in {tmp_path / 'stopped.partial'} was started "
        "with other settings than asked (epochs 2, asked 3): pass --redo train to start it "
        "again with these, or choose another --out")

    # A failing stage is reported in the closing line, not called a finished pipeline.
    (run / "model.keras").write_bytes(b"not a model")
    assert main(argv) != 0
    assert "pipeline finished with a failed stage (exit" in capsys.readouterr().out


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
     "processor\t: 1\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n", ["avx512_vnni"]),
    ("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f\n", []),
    ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd crc32 atomics asimddp\n",
     ["asimddp"]),
    (None, None),
])
def test_the_environment_names_the_int8_dot_product_instructions(tmp_path, cpuinfo, expected):
    # Two machines both called "AMD EPYC" ran int8 at different speeds and, in ONNX Runtime,
    # to different results: one had avx512_vnni, one not; their reports could not tell.
    from edge_runtime.cpu_features import int8_dot_product
    from edgekit.benchmarks.report import int8_dot_product_note

    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    flags = int8_dot_product(str(path))
    assert flags == expected
    assert int8_dot_product_note({"int8_dot_product": flags}) == (
        "" if expected is None else f", int8 dot product: {', '.join(expected) or 'none'}")
