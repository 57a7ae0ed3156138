"""FolderLock: one holder per folder, across processes, released however the holder ends."""
import subprocess
import sys

import pytest

from edge_runtime.errors import UserError
from edgekit.common.folder_lock import FolderLock

HOLD = ("import fcntl, os, sys; descriptor = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(descriptor, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()")


def test_a_folder_held_by_another_process_is_refused_until_it_ends(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with FolderLock() as lock, pytest.raises(UserError) as refused:
            lock.take(tmp_path)
        assert str(refused.value) == (f"{tmp_path} is in use by another edgekit command right "
                                      "now: wait for it to end, or stop it first")
    finally:
        holder.kill()  # killed, not released: the lock ends with the process
        holder.wait()
    with FolderLock() as lock:
        lock.take(tmp_path)


def test_taking_the_held_folder_again_is_a_no_op_and_a_new_one_replaces_it(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with FolderLock() as lock:
        lock.take(first)
        lock.take(first)
        lock.take(second)  # lets go of the first
        with FolderLock() as other:
            other.take(first)
            with pytest.raises(UserError):
                other.take(second)
    with FolderLock() as lock:
        lock.take(second)  # the with block let go of it


def test_a_wait_for_a_held_folder_ends_when_its_holder_does(tmp_path, capsys):
    import threading
    import time

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    started = time.monotonic()
    threading.Timer(1.0, holder.kill).start()
    with FolderLock() as lock:
        lock.take(tmp_path, wait=True)
        # Only the kill, a second in, frees it (poll() may not see the exit yet: the kernel
        # drops the lock as the process closes its files, before it can be reaped).
        assert time.monotonic() - started >= 1.0
    assert holder.wait(timeout=10) == -9
    assert capsys.readouterr().err == (f"waiting for {tmp_path}: another edgekit command is "
                                       "using it\n")
