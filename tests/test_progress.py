"""Progress bars refresh often on a terminal and rarely in a log."""
import io
import time

from edgekit.common import progress as progress_module


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _refreshes(stderr, monkeypatch) -> int:
    """How many times a 60-step bar, one step per 10 ms, writes itself to ``stderr``."""
    monkeypatch.setattr(progress_module.sys, "stderr", stderr)
    with progress_module.progress_bar(60, "bench", "step") as bar:
        for _ in range(60):
            time.sleep(0.01)
            bar.update(1)
    return stderr.getvalue().count("\r")


def test_bar_refreshes_on_a_terminal_and_stays_quiet_in_a_log(monkeypatch):
    on_terminal = _refreshes(_Terminal(), monkeypatch)
    in_log = _refreshes(io.StringIO(), monkeypatch)
    # 0.6 s at a refresh every 0.2 s on a terminal; in a log the first write, the last and
    # (the bar not being kept) its erasure.
    assert on_terminal >= 4
    assert in_log <= 3
    assert in_log < on_terminal
