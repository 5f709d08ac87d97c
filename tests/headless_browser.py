"""A real headless Chromium for tests, driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages, NUL-terminated, commands on fd 3, replies and
events on fd 4), so no Python dependency and no network port.

``Browser(user_data_dir)`` starts Chromium (``CHROMIUM`` env var, else ``chromium`` on
PATH; missing = a loud failure, never a skip), opens one page and records every JavaScript
exception, ``console.error`` and browser-log error of it in ``errors``. Methods:
``navigate(url)``, ``evaluate(js)`` (value of an expression, promises awaited),
``wait_for(js)`` (until the expression is truthy), ``screenshot(path)``, ``close()``.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

# The closed network here refuses connections: no background networking, updates, sync.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def chromium_binary() -> str:
    """The Chromium executable; an AssertionError saying how to install it when absent."""
    name = os.environ.get("CHROMIUM", "chromium")
    found = shutil.which(name)
    assert found, (f"headless browser test: {name!r} not found on PATH. Install Debian's chromium "
                   "(scripts/install_system_deps.sh, run by `make setup`) or set CHROMIUM to its path")
    return found


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, user_data_dir: Path, width: int = 1600, height: int = 1000, timeout: float = 30.0):
        self.timeout = timeout
        self.errors: list[str] = []
        self._events: queue.Queue = queue.Queue()
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._next_id = 0
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():  # the protocol's fds 3 (commands in) and 4 (replies out)
            commands, replies = os.dup(to_browser_r), os.dup(from_browser_w)  # neither is 3 or 4 now
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        Path(user_data_dir).mkdir(parents=True, exist_ok=True)
        self._stderr_path = Path(user_data_dir) / "chromium.stderr"
        self._stderr = open(self._stderr_path, "wb")
        self.process = subprocess.Popen(
            [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
             f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
            preexec_fn=child_fds, close_fds=False)  # else 3 and 4 are closed after preexec_fn; Python's own
            # fds are not inheritable (PEP 446), so nothing else reaches Chromium
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ protocol
    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._cond:
                            self._replies[message["id"]] = message
                            self._cond.notify_all()
                    else:
                        self._on_event(message)

    def _on_event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"JavaScript exception: {text} ({details.get('url', '')}:{details.get('lineNumber')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"browser log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        self._events.put(message)

    def send(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise BrowserError(f"Chromium did not answer {method} within {self.timeout:.0f} s "
                                       f"(exit code {self.process.poll()}); its output:\n{self._tail()}")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _tail(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text(errors="replace")[-3000:]

    # ------------------------------------------------------------------ page
    def navigate(self, url: str) -> None:
        while not self._events.empty():
            self._events.get_nowait()
        self.send("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            if event.get("method") == "Page.loadEventFired":
                return
        raise BrowserError(f"{url}: no load event within {self.timeout:.0f} s")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating {expression[:200]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(f"timed out waiting for {what} ({expression!r})")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        try:
            os.close(self._to_browser)  # Chromium exits when its command pipe closes
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._stderr.close()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
