"""Property-based tests of what a careless or hostile user can put in a folder: manifests and
run directories of any JSON shape, paths and types. Whatever they hold, the commands' readers
raise only errors a user is shown in one line (UserError), and no file outside the folder is
ever named for reading."""
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.classifier import Classifier
from edge_runtime.errors import UserError
from edge_runtime.manifest import read_manifest, variant_file
from edgekit.benchmarks.bench import plan_subjects
from edgekit.pipeline import pending_variants
from edgekit.train.finished_run import check_finished_run, read_run_config

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
FILE_NAMES = st.sampled_from(["model_int8.tflite", "model_onnx-int8.onnx", "../outside.tflite",
                              "/etc/passwd", "sub/model.tflite", "..", ".", "", "link.tflite",
                              "missing.tflite", "logs"]) | st.text(max_size=12)
ENTRY = st.fixed_dictionaries(
    {"name": st.text(max_size=8), "file": FILE_NAMES},
    optional={"format": st.sampled_from(["tflite", "onnx", "keras"]) | JSON,
              "precision": JSON, "sha256": st.text(max_size=64) | JSON, "error": JSON,
              "input_normalization": JSON})
MANIFEST = st.fixed_dictionaries(
    {"variants": st.lists(ENTRY, max_size=4)},
    optional={"labels": st.lists(st.text(max_size=6), max_size=4) | JSON, "input": JSON,
              "source_model": JSON}) | JSON
EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def folder_with(tmp_path: Path, manifest) -> Path:
    """A fresh folder holding ``manifest`` as manifest.json, a model file and a link that
    leads out of it."""
    folder = tmp_path / "case"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "model_int8.tflite").write_bytes(b"TFL3")
    (folder / "link.tflite").symlink_to("/etc/passwd")
    (folder / "logs").mkdir()
    return folder


def inside(folder: Path, path: Path) -> bool:
    return path.parent == folder and folder.resolve() in path.resolve().parents


@pytest.mark.parametrize("manifest_text", ["", "{", "[]", "null", '{"variants": {}}'])
def test_text_that_is_no_manifest_is_one_error(tmp_path, manifest_text):
    (tmp_path / "manifest.json").write_text(manifest_text)
    with pytest.raises(UserError, match="unreadable manifest"):
        read_manifest(tmp_path / "manifest.json")


@EXAMPLES
@given(manifest=MANIFEST)
def test_any_manifest_is_read_or_refused_and_names_only_its_folder(tmp_path, manifest):
    folder = folder_with(tmp_path, manifest)
    try:
        read = read_manifest(folder / "manifest.json")
    except UserError:
        return
    for entry in read["variants"]:
        try:
            assert inside(folder, variant_file(folder, entry))
        except UserError as exc:
            assert "refused" in str(exc)
    # The benchmark's plan: every subject it would run is a file of the folder.
    for subject in plan_subjects(folder, read, (1,), {"ai-edge-litert", "onnxruntime"}):
        assert subject.error or inside(folder, subject.path)


@EXAMPLES
@given(manifest=MANIFEST)
def test_the_pipeline_reads_any_manifest_as_work_left_to_do(tmp_path, manifest):
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    (run / "artifacts").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"PK")
    (run / "artifacts" / "manifest.json").write_text(json.dumps(manifest))
    pending = pending_variants(run, ["float32", "int8"])
    assert pending == ["float32", "int8"]  # nothing there is a finished variant of this model


@EXAMPLES
@given(manifest=MANIFEST)
def test_converting_beside_any_manifest_deletes_only_its_own_files(tmp_path, manifest):
    # A manifest of another model: convert deletes the files it names before converting anew.
    from edgekit.convert.pipeline import _reusable_entries

    folder = folder_with(tmp_path, manifest)
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"keep")
    assert _reusable_entries(folder, "0" * 64) == {}
    assert outside.read_bytes() == b"keep" and Path("/etc/passwd").is_file()


@EXAMPLES
@given(config=JSON)
def test_any_config_json_is_a_run_or_one_error(tmp_path, config):
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    for name in ("model.keras", "labels.txt"):
        (run / name).write_text("x")
    (run / "config.json").write_text(json.dumps(config))
    try:
        check_finished_run(run)
        read_run_config(run / "config.json")
    except UserError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=MANIFEST)
def test_a_model_beside_any_manifest_loads_or_is_one_error(converted_run, tmp_path, manifest):
    run, _, made = converted_run
    folder = folder_with(tmp_path, manifest)
    int8 = next(v for v in made["variants"] if v["name"] == "int8")
    shutil.copy(run / "artifacts" / int8["file"], folder / "model_int8.tflite")
    try:
        classifier = Classifier(folder / "model_int8.tflite")
    except UserError as exc:
        assert "\n" not in str(exc).strip()
        return
    assert classifier.labels  # the file's own metadata
