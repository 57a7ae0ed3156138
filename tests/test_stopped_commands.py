"""A command stopped from outside leaves nothing behind: a conversion's child process dies with
it (SIGKILL) or is ended by it (SIGTERM, as Ctrl-C), in edgekit convert and in the pipeline; a
work folder that a killed conversion could not remove is removed by the next one; a killed
benchmark's subject processes end with it."""
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def started(arguments: list, marker: str = "") -> tuple[subprocess.Popen, queue.Queue,
                                                       threading.Thread]:
    """``edgekit ARGUMENTS`` in a child process, its output lines in a queue (filled by the
    thread returned), returned once it printed a line holding ``marker`` and started a child
    process of its own."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from edgekit.cli import main; sys.exit(main())",
         *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    seen = not marker
    while not (seen and children(process.pid)):
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"edgekit {' '.join(arguments)} never got to {marker or 'a child'}")
        try:
            seen = seen or marker in lines.get(timeout=0.2)
        except queue.Empty:
            continue
    return process, lines, reader


CONVERSION = ["--variants", "qat-int8", "--calibration-size", "10", "--probe-size", "10"]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(word) for word in found.split()]


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def wait_until_ended(pids: list[int], seconds: float = 30) -> list[int]:
    """The processes of ``pids`` still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [pid for pid in pids if running(pid)]


def work_folders(run: Path) -> list[Path]:
    return sorted((run / "artifacts").glob(".work-*"))


@pytest.fixture
def run_copy(converted_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(converted_run[0], run, ignore=shutil.ignore_patterns("artifacts", "report"))
    return run


def test_a_killed_conversion_leaves_no_worker_and_the_next_removes_its_folder(run_copy):
    process, _, _ = started(["convert", str(run_copy), *CONVERSION], "qat-int8: converting")
    workers = children(process.pid)
    assert workers
    process.kill()
    process.wait()
    assert wait_until_ended(workers) == []
    assert work_folders(run_copy)  # a SIGKILL leaves no chance to clean up
    from edgekit.cli import main

    assert main(["convert", str(run_copy), "--variants", "float32", "--calibration-size", "10",
                 "--probe-size", "10"]) == 0
    assert work_folders(run_copy) == []


@pytest.mark.parametrize("command", ["convert", "pipeline"])
def test_sigterm_cleans_up_as_ctrl_c_does(run_copy, command):
    arguments = ["convert", str(run_copy)] if command == "convert" else \
        ["pipeline", "--out", str(run_copy), "--stages", "convert"]
    process, lines, reader = started([*arguments, *CONVERSION], "qat-int8: converting")
    workers = children(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert wait_until_ended(workers) == []
    assert work_folders(run_copy) == []
    reader.join(timeout=10)  # the output's end: the pipe closed with the process
    hint = "; the same command resumes where it stopped" if command == "pipeline" else ""
    assert list(lines.queue)[-1] == f"edgekit: terminated{hint}\n"


def test_a_killed_benchmark_leaves_no_subject_running(converted_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(converted_run[0], run, ignore=shutil.ignore_patterns("report"))
    process, _, _ = started(["bench", str(run), "--threads", "1", "--rounds", "50"])
    subjects = children(process.pid)
    process.kill()
    process.wait()
    assert wait_until_ended(subjects) == []
