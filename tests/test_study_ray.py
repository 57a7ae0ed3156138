"""``edgekit study --executor ray``: the same tables as the local executor, a killed worker's
cell retried, Ctrl-C cancelling the tasks, run directories sent back with their sha256, and
the flags' errors. Each study starts a Ray instance of its own on this machine's cores."""
import csv
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import default_ctrl_c

from edge_runtime.errors import UserError
from edgekit.cli import main
from edgekit.ray_cells import receive
from edgekit.run_shipping import pack_folders, unpack_folders

pytestmark = pytest.mark.slow

GRID = ('archs = ["seed_cnn", "ds_cnn"]\nwidths = [0.25]\nvariants = "float32,int8"\n'
        '[train]\nepochs = 2\nbatch-size = 8\nval-fraction = 0.25\n')
# What two runs of one study may differ in: timings, the machines' names, and gzip_bytes:
# TensorFlow's training on a CPU is not bit-for-bit repeatable (its threads sum in varying
# order), so two local runs' files differ in their last bits and compress a few bytes apart.
VARYING = {"train_minutes", "cpu_train_minutes", "latency_median_ms", "latency_p25_ms",
           "latency_p75_ms", "peak_rss_mb", "trained_host", "bench_host", "gzip_bytes",
           "sha256"}


def study_rows(study) -> list[dict]:
    with open(study / "study.csv") as handle:
        return [{key: value for key, value in row.items() if key not in VARYING}
                for row in csv.DictReader(handle)]


def test_ray_writes_the_rows_the_local_executor_writes(tiny_tree, cache_dir, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    common = ["study", "--data", str(tiny_tree), "--grid", str(grid), "--threads", "1",
              "--bench-rounds", "1"]
    assert main(common + ["--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    capsys.readouterr()
    ray_study = tmp_path / "ray"
    assert main(common + ["--out", str(ray_study), "--executor", "ray"]) == 0
    printed = capsys.readouterr().out
    for cell in ("seed_cnn-w0.25", "ds_cnn-w0.25"):
        assert f"{cell}: sent to Ray (log: {ray_study / 'logs' / cell}.log)" in printed
        assert f"{cell}: trained and converted in" in printed
        log = (ray_study / "logs" / f"{cell}.log").read_text()
        assert f"{cell}: training and converting on {platform.node()} (pid " in log
    assert f"benchmarking 2 cell(s) one at a time on this machine ({platform.node()})" in printed
    rows = study_rows(ray_study)
    assert len(rows) == 6 and rows == study_rows(tmp_path / "local")
    with open(ray_study / "study.csv") as handle:
        hosts = {(row["trained_host"], row["bench_host"]) for row in csv.DictReader(handle)}
    assert hosts == {(platform.node(), platform.node())}
    assert not (ray_study / ".edgekit-study").exists()  # the shared-folder marker is removed

    # Resumed: both cells are trained and converted, so no task is sent.
    assert main(common + ["--out", str(ray_study), "--executor", "ray"]) == 0
    printed = capsys.readouterr().out
    assert "sent to Ray" not in printed
    assert printed.count("already trained and converted") == 2

    # Asked for another training: the cells' tasks refuse their old runs, as local cells do.
    assert main(common + ["--out", str(ray_study), "--executor", "ray", "--epochs", "3"]) == 1
    rows = json.loads((ray_study / "study.json").read_text())["rows"]
    assert [r["error"] for r in rows] == ["trained with other settings than the grid asks "
                                          "(epochs 2, asked 3): give the study another --out"] * 2


def test_a_cell_whose_worker_is_killed_is_retried_and_completes(tiny_tree, cache_dir, tmp_path):
    study = tmp_path / "study"
    log = study / "logs" / "seed_cnn-w0.25.log"
    history = study / "cells" / "seed_cnn-w0.25.partial" / "history.csv"
    killed = []

    def kill_the_first_worker() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            pids = re.findall(r"training and converting on .* \(pid (\d+)\)",
                              log.read_text() if log.is_file() else "")
            if pids and history.is_file() and len(history.read_text().splitlines()) >= 2:
                os.kill(int(pids[0]), signal.SIGKILL)  # after its first whole epoch
                killed.append(int(pids[0]))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_worker)
    killer.start()
    try:
        code = main(["study", "--data", str(tiny_tree), "--out", str(study), "--archs",
                     "seed_cnn", "--widths", "0.25", "--epochs", "40", "--batch-size", "4",
                     "--variants", "float32", "--threads", "1", "--bench-rounds", "1",
                     "--executor", "ray", "--max-retries", "1"])
    finally:
        killer.join()
    assert killed, "the cell's worker never finished an epoch"
    assert code == 0
    pids = [int(p) for p in re.findall(r"training and converting on .* \(pid (\d+)\)",
                                       log.read_text())]
    assert len(pids) == 2 and pids[0] == killed[0] and pids[1] != killed[0]
    assert "(resuming)" in log.read_text()  # the retry took up the killed worker's epochs
    metrics = json.loads((study / "cells" / "seed_cnn-w0.25" / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 40
    rows = json.loads((study / "study.json").read_text())["rows"]
    assert [r["error"] for r in rows] == [None, None]


def test_ctrl_c_cancels_the_ray_tasks_and_keeps_the_partial_run(tiny_tree, tmp_path):
    study = tmp_path / "study"
    command = [sys.executable, "-m", "edgekit.cli", "study", "--data", str(tiny_tree),
               "--out", str(study), "--archs", "seed_cnn", "--widths", "0.25",
               # Epochs enough that the cell is still training when Ctrl-C reaches it on a
               # busy machine (500 tiny epochs once ended before the cancel arrived).
               "--epochs", "100000", "--batch-size", "4", "--executor", "ray"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                                                   EDGEKIT_CACHE=str(tmp_path / "cache")),
                               preexec_fn=default_ctrl_c)
    history = study / "cells" / "seed_cnn-w0.25.partial" / "history.csv"
    log = study / "logs" / "seed_cnn-w0.25.log"
    worker = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (history.is_file() and
                                              len(history.read_text().splitlines()) >= 2):
            time.sleep(0.2)
        assert history.is_file(), "the cell never finished an epoch"
        worker = int(re.search(r"\(pid (\d+)\)", log.read_text()).group(1))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        # Whatever failed above, nothing of this study goes on training its 100000 epochs.
        if process.poll() is None:
            process.kill()
            process.wait()
        if worker is not None and running(worker, within=30):
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the cell's Ray worker outlived the study by 30 s")
    assert process.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "edgekit: interrupted; the same command resumes where it stopped")
    # The task got the KeyboardInterrupt: its training wound down and kept its epochs.
    assert log.read_text().strip().splitlines()[-1] == (
        "edgekit: interrupted; the same command resumes where it stopped")
    assert history.is_file() and not (study / "cells" / "seed_cnn-w0.25").exists()


def running(pid: int, within: float) -> bool:
    """Whether process ``pid`` is still there after waiting up to ``within`` seconds for it
    to go."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_a_run_directory_is_unpacked_only_with_its_sha256(tmp_path):
    sent = tmp_path / "worker"
    (sent / "cell" / "artifacts").mkdir(parents=True)
    (sent / "cell" / "model.keras").write_bytes(b"weights")
    (sent / "cell" / "artifacts" / "manifest.json").write_text("{}")
    archive, digest = pack_folders(sent, ["cell", "cell.partial"])
    study = tmp_path / "study"
    (study / "cell.partial").mkdir(parents=True)  # the interrupted run the worker finished
    (study / "cell.partial" / "history.csv").write_text("epoch\n")

    wrong = "0" * 64
    with pytest.raises(UserError, match="sent by worker-1 failed its sha256 check"):
        unpack_folders(archive, wrong, study, ["cell", "cell.partial"], "worker-1")
    assert sorted(p.name for p in study.iterdir()) == ["cell.partial"]  # nothing changed
    damaged = archive[:-10] + bytes(10)
    with pytest.raises(UserError, match="failed its sha256 check"):
        unpack_folders(damaged, digest, study, ["cell", "cell.partial"], "worker-1")

    unpack_folders(archive, digest, study, ["cell", "cell.partial"], "worker-1")
    assert sorted(p.name for p in study.iterdir()) == ["cell"]
    assert (study / "cell" / "model.keras").read_bytes() == b"weights"
    assert (study / "cell" / "artifacts" / "manifest.json").read_text() == "{}"

    # The study's side of a task: a cell sent back with a wrong digest is a failed cell,
    # said in its log, and the cell already there stays as it was.
    log = tmp_path / "cell.log"
    result = {"code": 0, "host": "worker-2", "pid": 7, "archive": archive, "sha256": wrong,
              "log": "[1/3] train: ...\n"}
    (study / "cell" / "model.keras").write_bytes(b"older weights")
    assert receive(result, study / "cell", log) == 1
    assert log.read_text() == ("[1/3] train: ...\nedgekit: error: the run directory sent by "
                               "worker-2 (pid 7) failed its sha256 check (got "
                               f"{digest[:12]}..., sent as 000000000000...): not unpacked\n")
    assert (study / "cell" / "model.keras").read_bytes() == b"older weights"
    assert receive({**result, "sha256": digest}, study / "cell", log) == 0
    assert (study / "cell" / "model.keras").read_bytes() == b"weights"


def test_an_archive_reaching_outside_the_cell_is_refused(tmp_path):
    (tmp_path / "worker" / "other").mkdir(parents=True)
    (tmp_path / "worker" / "other" / "file").write_text("x")
    archive, digest = pack_folders(tmp_path / "worker", ["other"])
    with pytest.raises(UserError, match="holds 'other', outside cell, cell.partial"):
        unpack_folders(archive, digest, tmp_path / "study", ["cell", "cell.partial"], "w")
    assert list((tmp_path / "study").iterdir()) == []


@pytest.mark.parametrize("flags, message", [
    (["--executor", "ray"], "--executor ray needs Ray, which is not installed: pip install "
                            "'edgekit[cluster]'"),
    (["--ray-address", "auto"], "--ray-address is for --executor ray"),
    (["--cpus-per-cell", "2", "--max-retries", "3"],
     "--cpus-per-cell, --max-retries are for --executor ray"),
])
def test_executor_flags_are_checked_before_anything_trains(tmp_path, monkeypatch, capsys, flags,
                                                           message):
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    assert main(["study", "--out", str(tmp_path / "study"), "--archs", "seed_cnn",
                 "--widths", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("flags, message", [
    (["--jobs", "2"], "--jobs is for --executor local"),
    (["--cpus-per-cell", "0"], "--cpus-per-cell must be a positive number, got 0.0"),
    (["--max-retries", "-1"], "--max-retries must be 0 or more, got -1"),
    (["--ray-address", "head-node"], "--ray-address 'head-node': give auto, HOST:PORT or "
                                     "ray://HOST:PORT"),
])
def test_bad_ray_flags_are_one_line(tmp_path, capsys, flags, message):
    assert main(["study", "--out", str(tmp_path / "study"), "--archs", "seed_cnn",
                 "--widths", "1", "--executor", "ray", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()


def test_a_ray_address_where_nothing_answers_is_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert main(["study", "--out", str(tmp_path / "study"), "--archs", "seed_cnn", "--widths",
                 "1", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"--ray-address 127.0.0.1:{port}: nothing answers there" in err
    assert len(err.strip().splitlines()) == 1


def test_a_worker_without_the_study_folder_trains_elsewhere_and_sends_the_cell_back(
        tiny_tree, cache_dir, tmp_path):
    """The task's side where the study's folder is not shared (its marker unreadable there):
    run here without Ray, as a worker on another machine would run it."""
    from dataclasses import replace

    from edgekit.cli import build_parser
    from edgekit.ray_cells import cell_folders, train_and_convert, with_absolute_paths
    from edgekit.study import check_study_args

    study = tmp_path / "study"
    argv = ["study", "--data", str(tiny_tree), "--out", str(study), "--archs", "seed_cnn",
            "--widths", "0.25", "--epochs", "1", "--batch-size", "8", "--variants", "float32",
            "--threads", "1", "--bench-rounds", "1"]
    _, cells = check_study_args(build_parser().parse_args(argv))
    pipeline = with_absolute_paths(replace(cells[0].pipeline, stages=("train", "convert")))
    log = tmp_path / "cell.log"
    result = train_and_convert(pipeline, str(log), str(tmp_path / "elsewhere" / "marker"),
                               "token", pack_folders(study / "cells", cell_folders(pipeline.out)),
                               1)
    assert result["code"] == 0 and len(result["sha256"]) == 64
    assert not pipeline.out.exists()  # trained in the task's own folder, not in the study's
    assert receive(result, pipeline.out, log) == 0
    assert (pipeline.out / "model.keras").is_file()
    assert json.loads((pipeline.out / "artifacts" / "manifest.json").read_text())["variants"]
    assert not (study / "cells" / "seed_cnn-w0.25.partial").exists()
    # The study takes the cell as trained and converted, and benchmarks it.
    assert main(argv) == 0
    study_log = (study / "logs" / "seed_cnn-w0.25.log").read_text()
    assert study_log.count("already done, skipped") == 2
    rows = json.loads((study / "study.json").read_text())["rows"]
    assert [(r["variant"], r["error"]) for r in rows] == [("keras", None), ("float32", None)]
