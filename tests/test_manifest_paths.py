"""A manifest names files in its own folder only: entries that name an absolute path, a path
with folders or ``..``, or a symbolic link out of the folder are refused, by every command that
reads a manifest (bench, the pipeline's check of finished variants, convert's clean-up)."""
import json
import os
import shutil

import pytest

from edge_runtime.errors import UserError
from edge_runtime.manifest import variant_file
from edgekit.cli import main
from edgekit.pipeline import pending_variants

QUICK = ["--rounds", "1", "--latency-seconds", "0.05", "--batch", "8", "--threads", "1"]


def hostile_entries(folder, outside_model) -> list[dict]:
    """Entries that name files outside ``folder``, each as a copy of a real entry would."""
    link = folder / "linked.tflite"
    link.symlink_to(outside_model)
    return [{"name": "passwd", "file": "/etc/passwd", "format": "tflite"},
            {"name": "parent", "file": "../outside.tflite", "format": "tflite"},
            {"name": "absolute", "file": str(outside_model), "format": "tflite"},
            {"name": "linked", "file": link.name, "format": "tflite"}]


@pytest.mark.parametrize("name", ["/etc/passwd", "../x.tflite", "a/b.tflite", "..", "", "."])
def test_a_name_that_leads_out_of_the_folder_is_refused(tmp_path, name):
    with pytest.raises(UserError, match="refused"):
        variant_file(tmp_path, {"name": "v", "file": name})


def test_links_are_followed_only_inside_the_folder(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"x")
    (tmp_path / "alias.tflite").symlink_to(tmp_path / "model.tflite")
    assert variant_file(tmp_path, {"name": "v", "file": "alias.tflite"}) == \
        tmp_path / "alias.tflite"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "away.tflite").symlink_to("/etc/passwd")
    with pytest.raises(UserError, match="links outside"):
        variant_file(tmp_path / "out", {"name": "v", "file": "away.tflite"})


def test_bench_refuses_entries_outside_the_folder(converted_run, tmp_path):
    run, _, manifest = converted_run
    folder = tmp_path / "models"
    folder.mkdir()
    int8 = next(v for v in manifest["variants"] if v["name"] == "int8")
    shutil.copy(run / "artifacts" / int8["file"], folder / int8["file"])
    outside_model = tmp_path / "outside.tflite"
    shutil.copy(run / "artifacts" / int8["file"], outside_model)
    (folder / "manifest.json").write_text(json.dumps(
        {**manifest, "variants": [int8, *hostile_entries(folder, outside_model)]}))
    assert main(["bench", str(folder), *QUICK]) == 1
    rows = json.loads((folder / "report" / "benchmark.json").read_text())["rows"]
    refused = {row["variant"]: row for row in rows if row["variant"] != "int8"}
    assert set(refused) == {"passwd", "parent", "absolute", "linked"}
    for row in refused.values():
        assert "refused" in row["error"] and row["bytes"] is None
    # Nothing outside was measured or sized: the one good file alone has figures.
    assert [row["variant"] for row in rows if row["error"] is None] == ["int8"]
    passwd_size = str(os.path.getsize("/etc/passwd"))
    assert passwd_size not in (folder / "report" / "benchmark.csv").read_text().split(",")


def test_the_pipeline_and_convert_leave_outside_files_alone(converted_run, tmp_path):
    run, _, manifest = converted_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    victim = tmp_path / "outside.tflite"
    shutil.copy(run / "artifacts" / manifest["variants"][0]["file"], victim)
    entries = [dict(manifest["variants"][0], name="float32", file=str(victim))]
    hostile = {**manifest, "variants": entries}
    (copy / "artifacts" / "manifest.json").write_text(json.dumps(hostile))
    # The outside file is never taken as a finished variant, whatever its sha256.
    assert pending_variants(copy, ["float32"]) == ["float32"]
    # A manifest of another model: convert deletes its files, but never one outside.
    (copy / "artifacts" / "manifest.json").write_text(json.dumps(
        {**hostile, "source_model": {"sha256": "0" * 64}}))
    assert main(["convert", str(copy), "--variants", "float32", "--calibration-size", "10",
                 "--probe-size", "10"]) == 0
    assert victim.is_file()
    written = json.loads((copy / "artifacts" / "manifest.json").read_text())
    assert [v["file"] for v in written["variants"]] == ["model_float32.tflite"]
