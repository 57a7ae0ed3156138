"""How ``edgekit bench`` measures: one frozen record, filled from flags, written into
benchmark.json, and compared with a later command's through the same record."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .environment import default_threads

# Not how the files are measured but which rows and on what data: not compared by the
# pipeline (a missing test-time augmentation mode reruns the benchmark by itself).
SELECTION_FIELDS = ("data", "tta")


@dataclass(frozen=True)
class BenchSettings:
    """How long and how hard to measure; the defaults are ``edgekit bench``'s."""

    rounds: int = 7
    latency_seconds: float = 0.3
    max_runs: int = 2000
    throughput_batch: int = 256
    throughput_seconds: float = 0.3
    threads: tuple = field(default_factory=default_threads)
    test_limit: Optional[int] = None
    data: Optional[str] = None
    # (backend, python) pairs: runtimes measured in another Python environment, such as
    # tflite-runtime, which needs numpy < 2 and so cannot live beside TensorFlow 2.21.
    runtime_pythons: tuple = ()
    # Test-time augmentation modes (edge_runtime.classifier.TTA_MODES) each file is measured
    # with; a mode other than "none" adds rows named "<variant>+<mode>".
    tta: tuple = ("none",)

    def recorded(self) -> dict:
        """These settings as benchmark.json records them (JSON types: lists, a dict of
        Pythons)."""
        return {**asdict(self), "threads": list(self.threads), "tta": list(self.tta),
                "runtime_pythons": dict(self.runtime_pythons)}

    def compared(self) -> dict:
        """The recorded settings by which the pipeline tells whether a report is what it asks
        for."""
        return {k: v for k, v in self.recorded().items() if k not in SELECTION_FIELDS}
