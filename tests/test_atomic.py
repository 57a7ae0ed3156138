"""Atomic writes: the target appears whole or not at all, and an error names the target."""
import os

import pytest

from edgekit.common.atomic import write_json, write_text


def test_a_write_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    write_json(target, {"accuracy": 0.83})
    assert target.read_text() == '{\n  "accuracy": 0.83\n}\n'
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_failed_write_names_the_target_not_its_temporary_name(tmp_path):
    target = tmp_path / "missing" / "rows.json"
    with pytest.raises(FileNotFoundError) as raised:
        write_text(target, "[]")
    assert raised.value.filename == str(target)
    assert not (tmp_path / "missing").exists()
