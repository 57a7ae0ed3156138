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


def test_a_full_disk_names_the_file_being_written(tmp_path, capsys):
    # A library's write on a full disk raises ENOSPC with no file name: the one-line error
    # said only "No space left on device".
    import errno

    from edge_runtime.errors import print_user_error
    from edgekit.common.atomic import atomic_path

    target = tmp_path / "checkpoint.npz"
    with pytest.raises(OSError) as raised:
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".npz" and tmp.parent == tmp_path
            raise OSError(errno.ENOSPC, "No space left on device")
    assert print_user_error(raised.value, "edgekit")
    assert capsys.readouterr().err == f"edgekit: error: {target}: No space left on device\n"
    assert os.listdir(tmp_path) == []


def test_folders_a_failed_command_created_empty_are_removed(tmp_path):
    from edgekit.common.atomic import missing, removed_if_left_empty

    kept = tmp_path / "kept"
    kept.mkdir()
    artifacts, logs = tmp_path / "artifacts", tmp_path / "artifacts" / "logs"
    assert missing(kept, artifacts, logs) == [artifacts, logs]
    with pytest.raises(OSError):
        with removed_if_left_empty(missing(kept, artifacts, logs)):
            logs.mkdir(parents=True)
            raise OSError(28, "No space left on device")
    assert sorted(os.listdir(tmp_path)) == ["kept"]  # there before: kept even empty
    with pytest.raises(KeyboardInterrupt):
        with removed_if_left_empty(missing(artifacts, logs)):
            logs.mkdir(parents=True)
            (artifacts / "manifest.json").write_text("{}")
            raise KeyboardInterrupt
    assert os.listdir(artifacts) == ["manifest.json"]  # a folder with files stays
