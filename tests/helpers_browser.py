"""Drive headless Chromium through the DevTools protocol over a pipe.

``chromium --screenshot`` shoots after a *virtual* time budget, and virtual time runs
ahead while the page waits on Streamlit's websocket: on a slow or busy machine it shot
the blank page before the app had drawn anything.  Here the test waits, in real time,
for what the page must show, then takes the screenshot.  The protocol runs over
``--remote-debugging-pipe`` (JSON messages ending in NUL, commands on the browser's
fd 3, replies on its fd 4), so no port and no websocket client are needed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from pathlib import Path


class HeadlessChromium:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: Path, profile: Path, width: int = 1200, height: int = 900):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [str(binary), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                # a headless page counts as hidden: keep its timers and renderer at full speed
                "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
                "--disable-backgrounding-occluded-windows",
                f"--user-data-dir={profile}", f"--window-size={width},{height}",
                "--remote-debugging-pipe", "about:blank"]
        # bash puts the pipe ends on the fds the protocol uses (dash takes one-digit fds only)
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "bash", *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._last_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  page=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass

    def send(self, method: str, params: dict | None = None, *, page: bool = False,
             timeout: float = 30.0) -> dict:
        """Run one protocol command (on the page's session if ``page``); return its result.

        Events that arrive meanwhile are dropped.
        """
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._last_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited (code {self.proc.poll()}) during "
                                       f"{method}")
                self._buffer += chunk

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, page=True)

    def evaluate(self, expression: str):
        """Return the value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate",
                           {"expression": expression, "returnByValue": True}, page=True)
        return result["result"].get("value")

    def text(self) -> str:
        """Return the page's visible text."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 120.0) -> str:
        """Poll the page until its text holds every needle; return the text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout} s the page lacks "
                                   f"{[n for n in needles if n not in text]}; its text: "
                                   f"{text[:2000]!r}")
            time.sleep(0.5)

    def wait_for(self, expression: str, timeout: float = 60.0) -> None:
        """Poll until a JavaScript expression is truthy in the page."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"!!({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout} s, still false: {expression}")
            time.sleep(0.5)

    def upload(self, selector: str, path: Path) -> None:
        """Set the file of the page's ``<input type=file>`` matching ``selector``."""
        self.wait_for(f"document.querySelector({json.dumps(selector)})")
        root = self.send("DOM.getDocument", page=True)["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector},
                         page=True)["nodeId"]
        if not node:
            raise RuntimeError(f"no element matches {selector!r}")
        # a relative path leaves the page waiting forever on a file it cannot find
        self.send("DOM.setFileInputFiles",
                  {"files": [str(Path(path).resolve())], "nodeId": node}, page=True)
        # getDocument made the browser stream every DOM change to us: stop that
        self.send("DOM.disable", page=True)

    def screenshot(self) -> bytes:
        """PNG bytes of the page's viewport."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, page=True)["data"]
        return base64.b64decode(data)
