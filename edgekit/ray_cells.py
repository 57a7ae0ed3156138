"""``edgekit study --executor ray``: each cell's training and conversion is a Ray task.

Ray schedules the tasks over the machines of a cluster (or a Ray instance of this machine's
own) by their resource requests: one GPU per cell where the cluster has GPUs, else
``--cpus-per-cell`` CPUs; it retries a task whose worker or machine died (``--max-retries``).
A worker that sees the study's folder (a shared filesystem) writes the cell in place; one that
does not trains in a folder of its own and sends the cell back as an archive through Ray's
object store, which the study unpacks only when its sha256 matches (run_shipping.py). The
benchmarks then run here, one cell at a time, on the machine they describe.

RayCells has CellPool's face (``submit``, ``run``, a context manager), so the study runs its
cells the same way under either executor. Ctrl-C cancels every task: a running one gets a
KeyboardInterrupt, and its training keeps its last whole epoch (RUN_DIR.partial), sent back
like a finished cell where the filesystem is not shared; a second Ctrl-C kills them.
"""
from __future__ import annotations

import os
import platform
import secrets
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

from edge_runtime.errors import UserError

from .cell_pool import INTERRUPTED
from .common.atomic import write_text

CLUSTER_EXTRA = "pip install 'edgekit[cluster]'"
MARKER = ".edgekit-study"  # STUDY_DIR/MARKER: a worker that reads the same token shares it


@dataclass(frozen=True)
class RaySettings:
    """Where the tasks run and what each asks for."""

    address: Optional[str] = None       # None: a Ray instance of this machine's own
    cpus_per_cell: float = 1.0
    gpus_per_cell: Optional[float] = None  # None: 1 where the cluster has GPUs, else 0
    max_retries: int = 1


def import_ray():
    """The ray module; UserError naming the extra when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {CLUSTER_EXTRA}") \
            from None
    return ray


@contextmanager
def ray_connected(settings: RaySettings) -> Iterator[None]:
    """Connected to the cluster at ``settings.address`` (``auto``, ``ray://host:port``), or to
    a Ray instance started here for the study with this machine's usable cores; disconnected
    (and that instance stopped) on leaving. The instance's node address is loopback, so its
    workers reach it without the network; its servers still listen on the machine's
    addresses, behind Ray's token authentication (on by default)."""
    ray = import_ray()
    options = dict(log_to_driver=False, configure_logging=False, include_dashboard=False)
    try:
        if settings.address:
            check_answers(settings.address)
            print(f"study: connecting to the Ray cluster at {settings.address}", flush=True)
            ray.init(address=settings.address, **options)
        else:
            ray.init(num_cpus=len(os.sched_getaffinity(0)), _node_ip_address="127.0.0.1",
                     **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = settings.address or "a Ray instance on this machine"
        raise UserError(f"could not connect to {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()


def address_host_port(address: str) -> Optional[tuple[str, int]]:
    """(host, port) of a HOST:PORT or ray://HOST:PORT ``address``; None for ``auto``;
    UserError for anything else."""
    if address == "auto":
        return None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r}: give auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def check_answers(address: str, seconds: float = 10.0) -> None:
    """UserError when nothing accepts a connection at ``address`` within ``seconds``: Ray
    itself keeps trying a wrong address for minutes. ``auto`` is left to Ray, which says at
    once when this machine joined no cluster."""
    import socket

    where = address_host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=seconds).close()
    except OSError as exc:
        raise UserError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); "
                        "is `ray start --head` running on that machine?") from None


class RayCells:
    """Cells' training and conversion as Ray tasks, all submitted at once (Ray queues them by
    resources); one thread here per cell waits on its task."""

    def __init__(self, settings: RaySettings, study_dir: Path, cells: int):
        ray = import_ray()
        self._ray = ray
        self._threads = ThreadPoolExecutor(max_workers=max(1, cells))
        self._lock = threading.Lock()  # guards _refs and _stopped across the threads
        self._refs: set = set()
        self._stopped = False
        self._marker = (study_dir / MARKER).resolve()
        self._token = secrets.token_hex(16)
        write_text(self._marker, self._token)
        gpus = settings.gpus_per_cell
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        # max_calls=1: each cell gets a fresh worker process, as a local cell gets a fresh
        # child, so no TensorFlow state or memory carries from one cell to the next.
        self._task = ray.remote(max_calls=1)(train_and_convert).options(
            num_cpus=settings.cpus_per_cell, num_gpus=gpus, max_retries=settings.max_retries,
            retry_exceptions=False)
        self._cpus = settings.cpus_per_cell

    def submit(self, work: Callable, *args) -> Future:
        """Queue ``work(*args)`` on the threads that wait on the tasks."""
        return self._threads.submit(work, *args)

    def run(self, name: str, pipeline, log_path: Path) -> int:
        """Train and convert one cell (PipelineSettings) as a Ray task, its output appended to
        ``log_path``; its exit status: INTERRUPTED for a task cancelled before it started,
        1 for a task whose worker died more often than retried, or whose cell came back
        damaged."""
        from .pipeline import check_same_training, trained_and_converted
        from .run_shipping import pack_folders

        try:
            check_same_training(pipeline)
            current = trained_and_converted(pipeline)
        except UserError:  # trained otherwise: its task's pipeline refuses it, saying why
            current = False
        if current:  # nothing to do: no worker to start or send the cell to
            print(f"{name}: already trained and converted", flush=True)
            return 0
        pipeline = with_absolute_paths(pipeline)  # a worker's working folder is not ours
        cells_dir = pipeline.out.parent
        shipped = pack_folders(cells_dir, cell_folders(pipeline.out))
        with self._lock:
            if self._stopped:
                return INTERRUPTED
            ref = self._task.remote(pipeline, str(log_path.resolve()), str(self._marker),
                                    self._token, shipped, self._cpus)
            self._refs.add(ref)
        print(f"{name}: sent to Ray (log: {log_path})", flush=True)
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.TaskCancelledError:
            return INTERRUPTED
        except self._ray.exceptions.RayError as exc:  # its worker died past --max-retries
            with open(log_path, "a") as log:
                log.write(f"edgekit: the cell's Ray task failed: {exc}\n")
            return 1
        finally:
            with self._lock:
                self._refs.discard(ref)
        return receive(result, pipeline.out, log_path)

    def _cancel_all(self, force: bool) -> None:
        with self._lock:
            self._stopped = True
            for ref in self._refs:
                self._ray.cancel(ref, force=force)

    def __enter__(self) -> "RayCells":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None or not issubclass(exc_type, KeyboardInterrupt):
                self._threads.shutdown(wait=True)
                return
            self._cancel_all(force=False)
            try:
                self._threads.shutdown(wait=True, cancel_futures=True)
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the cells to wind down
                self._cancel_all(force=True)
                raise
        finally:
            self._marker.unlink(missing_ok=True)


def with_absolute_paths(pipeline):
    """``pipeline`` with its run directory, and its data when that is a path here, made
    absolute: the same paths on a worker that shares the filesystem."""
    def absolute(data: Optional[str]) -> Optional[str]:
        return str(Path(data).resolve()) if data and Path(data).exists() else data

    out = pipeline.out.resolve()
    return replace(pipeline, out=out, data=absolute(pipeline.data),
                   train=replace(pipeline.train, out=str(out),
                                 data=absolute(pipeline.train.data)))


def cell_folders(run_dir: Path) -> list[str]:
    """The folders that hold a cell's state: its run and an interrupted training's."""
    from edgekit.train.finished_run import staging_dir

    return [run_dir.name, staging_dir(run_dir).name]


def receive(result: dict, run_dir: Path, log_path: Path) -> int:
    """Take in what a cell's task returned: the output of a worker that wrote elsewhere goes
    to ``log_path`` and its cell (sha256 checked) to ``run_dir``; its exit status, 1 for a
    cell that came back damaged (said in the log)."""
    from .run_shipping import unpack_folders

    if "archive" not in result:  # written in place on a shared filesystem
        return result["code"]
    with open(log_path, "a") as log:
        log.write(result["log"])
    try:
        unpack_folders(result["archive"], result["sha256"], run_dir.parent,
                       cell_folders(run_dir), f"{result['host']} (pid {result['pid']})")
    except UserError as exc:
        with open(log_path, "a") as log:
            log.write(f"edgekit: error: {exc}\n")
        return 1
    return result["code"]


def train_and_convert(pipeline, log_path: str, marker: str, token: str,
                      shipped: tuple[bytes, str], cpus: float) -> dict:
    """The Ray task: run a cell's pipeline here, in place where this machine sees the study's
    folder (``marker`` holds ``token``), else in a folder of its own seeded with ``shipped``
    (the cell's folders as the study holds them); {"code", "host", "pid"}, and for the latter
    the cell's folders packed ("archive", "sha256") and its output ("log")."""
    from .cell_pool import run_cell
    from .run_shipping import pack_folders, unpack_folders

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow sizes its thread pools to the machine: cells sharing one keep to their CPUs.
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(max(1, int(cpus)))
    host, pid = platform.node(), os.getpid()
    result = {"host": host, "pid": pid}
    if _reads(Path(marker)) == token:
        with output_to(Path(log_path)):
            print(f"{pipeline.out.name}: training and converting on {host} (pid {pid})",
                  flush=True)
            result["code"] = run_cell(pipeline)
        return result
    work = Path(tempfile.mkdtemp(prefix="edgekit-cell-"))
    try:
        names = cell_folders(pipeline.out)
        unpack_folders(*shipped, work, names, "the study")
        here = work / pipeline.out.name
        local = replace(pipeline, out=here, train=replace(pipeline.train, out=str(here)))
        with output_to(work / "cell.log"):
            print(f"{pipeline.out.name}: training and converting on {host} (pid {pid}), in "
                  f"{here}, to be sent back", flush=True)
            result["code"] = run_cell(local)
        result["archive"], result["sha256"] = pack_folders(work, names)
        result["log"] = (work / "cell.log").read_text(errors="replace")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _reads(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


@contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """This process's standard output and error (file descriptors 1 and 2, so TensorFlow's
    own lines too) appended to ``log_path`` within it."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
