"""A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on file descriptor 3, replies on 4, each JSON message ended by a NUL byte), so a
test can wait for what a page shows instead of guessing how long it takes."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from typing import Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# A reply later than this means the browser is stuck: the test fails instead of waiting
# forever (a busy two-core machine answers within seconds).
REPLY_TIMEOUT_S = 60.0


def find_browser() -> Optional[str]:
    """The Chromium on PATH, if any."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _above_ten(descriptor: int) -> int:
    moved = fcntl.fcntl(descriptor, fcntl.F_DUPFD, 10)
    os.close(descriptor)
    return moved


class Browser:
    """One headless Chromium page."""

    def __init__(self, executable: str, profile: str, width: int = 960, height: int = 640):
        """Start ``executable`` headless with its own empty profile folder ``profile``, so
        that no other Chromium on the machine (or its lock) is involved."""
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        # The child's descriptors 3 and 4 must be exactly these pipes: moved above 10 first,
        # so that neither is 3 or 4 already when the other is put there.
        to_browser, from_browser = (_above_ten(fd) for fd in (to_browser, from_browser))
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=lambda: (os.dup2(to_browser, 3),
                                                  os.dup2(from_browser, 4)))
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        try:
            target = next(t for t in self.call("Target.getTargets")["targetInfos"]
                          if t["type"] == "page")
            self.session = self.call("Target.attachToTarget", targetId=target["targetId"],
                                     flatten=True)["sessionId"]
            # The window's size includes what headless Chromium keeps for its frame: the
            # page's own size is set exactly.
            self.call("Emulation.setDeviceMetricsOverride", self.session, width=width,
                      height=height, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, session: Optional[str] = None, **params) -> dict:
        """Send one command and wait for its reply (events in between are dropped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                    raise RuntimeError(f"{method}: no reply from the browser in "
                                       f"{REPLY_TIMEOUT_S:.0f} s")
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise RuntimeError("the browser closed its pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", self.session, url=url)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", self.session, expression=expression,
                           returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        """Evaluate until the expression is truthy; its value (AssertionError at timeout,
        with the last value)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{expression} still {value!r} after {timeout} s")

    def screenshot(self) -> bytes:
        """The page as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", self.session,
                                          format="png")["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)
