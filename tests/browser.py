"""A tiny Chrome DevTools Protocol client for tests: headless chromium over a pipe, stdlib only.

``--remote-debugging-pipe`` makes chromium read CDP commands from fd 3 and write replies and
events to fd 4, each a JSON text ended by a NUL byte. That needs no port, no websocket library
and no HTTP: two pipes and ``select``. Only what the HTML report tests need is here: open a page,
evaluate JavaScript, and collect console errors, network requests and dialogs while it runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["Browser", "BrowserError", "BrowserNotFound", "Page", "find_chromium"]

INSTALL_HINT = "run `.ci/install-browser` (as root: apt-get install chromium)"

# As root in a container: no sandbox, no GPU, and nothing that phones home.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--remote-debugging-pipe",
)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """Chromium failed to start, answer or run a script; the message has its stderr tail."""


class BrowserNotFound(BrowserError):
    """No chromium executable on this machine."""


def find_chromium() -> str:
    """Path of a chromium executable: ``$SIUO_CHROMIUM``, else the first one on ``PATH``.

    :raises BrowserNotFound: saying how to install one.
    """
    chosen = os.environ.get("SIUO_CHROMIUM")
    if chosen:
        if shutil.which(chosen):
            return chosen
        raise BrowserNotFound(
            f"SIUO_CHROMIUM is {chosen!r}, which is not an executable; fix it or unset it and "
            + INSTALL_HINT
        )
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserNotFound(
        f"no chromium found on PATH (looked for {', '.join(CANDIDATES)}); " + INSTALL_HINT
    )


class Browser:
    """One headless chromium process driven over CDP; use it as a context manager."""

    def __init__(self, executable: str | None = None, *, timeout: float = 60.0) -> None:
        self.executable = executable or find_chromium()
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._buffer = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._stderr: Any = None
        self._to_browser = -1
        self._from_browser = -1

    # -- process ---------------------------------------------------------------------------

    def start(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="siuo-chromium-")
        # Kept open for the browser's lifetime and closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        cmd_read, cmd_write = os.pipe()  # we write commands, chromium reads them on fd 3
        out_read, out_write = os.pipe()  # chromium writes on fd 4, we read
        argv = [
            self.executable,
            *FLAGS,
            f"--user-data-dir={self._profile.name}",
            "about:blank",
        ]
        # Chromium wants the pipes on fds 3 and 4: hand them over as stdin/stdout and let sh
        # move them there (single-digit fds only, so any POSIX sh can do it), then exec.
        script = 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2'
        try:
            self._proc = subprocess.Popen(
                ["/bin/sh", "-c", script, "sh", *argv],
                stdin=cmd_read,
                stdout=out_write,
                stderr=self._stderr,
                start_new_session=True,  # its own process group, so close() can end it all
            )
        except OSError as exc:
            os.close(cmd_write)
            os.close(out_read)
            raise BrowserError(f"cannot start {self.executable}: {exc}; " + INSTALL_HINT) from exc
        finally:
            os.close(cmd_read)
            os.close(out_write)
        self._to_browser, self._from_browser = cmd_write, out_read
        version = self.send("Browser.getVersion")
        self.product = str(version.get("product", ""))
        return self

    def close(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(OSError):  # the pipe may be gone already
                    self._write({"id": self._new_id(), "method": "Browser.close"})
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            self._proc = None
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                os.close(fd)
        self._to_browser = self._from_browser = -1
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stderr_tail(self, lines: int = 15) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, message: str) -> BrowserError:
        command = shlex.join([self.executable, *FLAGS])
        return BrowserError(
            f"{message}\nchromium: {command}\nits stderr ends with:\n{self.stderr_tail()}"
        )

    # -- protocol --------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _write(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]

    def _read_one(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"chromium did not answer within {self.timeout:.0f} s")
            ready, _, _ = select.select([self._from_browser], [], [], min(left, 0.5))
            if not ready:
                if self._proc is not None and self._proc.poll() is not None:
                    raise self._fail(f"chromium exited with status {self._proc.returncode}")
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise self._fail("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _record(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        # An alert() would block the page (and every later evaluate) until someone answers it.
        if message.get("method") == "Page.javascriptDialogOpening":
            self._write(
                {
                    "id": self._new_id(),
                    "method": "Page.handleJavaScriptDialog",
                    "params": {"accept": False},
                    "sessionId": message.get("sessionId"),
                }
            )

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Run one CDP command and return its result; events seen meanwhile go to ``events``."""
        if self._proc is None:
            raise BrowserError("the browser is not started; use `with Browser() as browser:`")
        ident = self._new_id()
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._write(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_one(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise self._fail(f"CDP {method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._record(reply)

    def wait_for(
        self, method: str, *, session: str | None = None, since: int = 0
    ) -> dict[str, Any]:
        """The first event ``method`` (of ``session``) at or after index ``since`` of events."""
        deadline = time.monotonic() + self.timeout
        index = since
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if event.get("method") == method and (
                    session is None or event.get("sessionId") == session
                ):
                    return event
            message = self._read_one(deadline)
            if "method" in message:
                self._record(message)

    def open(self, url: str) -> Page:
        """A new tab showing ``url``, loaded (load event fired), with its events recorded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, target, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        mark = len(self.events)
        navigation = self.send("Page.navigate", {"url": url}, session=session)
        if navigation.get("errorText"):
            raise self._fail(f"cannot open {url}: {navigation['errorText']}")
        self.wait_for("Page.loadEventFired", session=session, since=mark)
        return page


class Page:
    """One tab of a :class:`Browser`."""

    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [
            e["params"]
            for e in self.browser.events
            if e.get("method") == method and e.get("sessionId") == self.session
        ]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (JSON-able), raising if it throws."""
        reply = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error in {expression!r}: {text}")
        return reply["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (e.g. CSP) so far."""
        found = []
        for params in self._events("Runtime.consoleAPICalled"):
            if params.get("type") in ("error", "assert"):
                args = params.get("args", [])
                found.append(
                    "console: " + " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
        for params in self._events("Runtime.exceptionThrown"):
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            found.append(f"exception: {text}")
        for params in self._events("Log.entryAdded"):
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                found.append(f"log ({entry.get('source')}): {entry.get('text')}")
        return found

    def requests(self) -> list[str]:
        """URLs the page asked for, the page itself included."""
        return [p["request"]["url"] for p in self._events("Network.requestWillBeSent")]

    def dialogs(self) -> list[str]:
        """Messages of alert/confirm/prompt dialogs the page opened (all were dismissed)."""
        return [str(p.get("message")) for p in self._events("Page.javascriptDialogOpening")]

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the whole page (for looking at a layout while developing)."""
        size = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        shot = self.browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
            },
            session=self.session,
        )
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def screenshot_of(self, selector: str, path: Path) -> tuple[float, float]:
        """Save a PNG of the element ``selector`` as laid out; returns its (width, height)."""
        box = self.evaluate(
            f"(function () {{ var r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.left + window.scrollX, r.top + window.scrollY, "
            "r.width, r.height]; })()"
        )
        shot = self.browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1},
            },
            session=self.session,
        )
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return box[2], box[3]

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})
