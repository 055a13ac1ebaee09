"""A small headless Chromium driver for the dashboard's browser tests, over the DevTools Protocol.

No new dependency: Chromium is started with ``--remote-debugging-port=0``, the port it chose is
read from ``DevToolsActivePort`` in its fresh profile directory, and the protocol is spoken
over aiohttp's WebSocket client. One browser WebSocket carries everything, with *flattened*
sessions (``Target.attachToTarget(flatten=True)``): each page is a session id on it.

* ``async with Browser.launch(tmp_dir) as browser:`` starts Chromium (its own process group, so
  every helper process it forks is stopped with it) and stops it at the end, whatever happens.
* ``page = await browser.new_page(url)`` opens a tab and waits for its ``load`` event. The page
  records console messages and uncaught exceptions from the start: ``page.errors`` lists
  every JavaScript error (``console.error``, exceptions, failed resource loads), which the
  tests require to be empty.
* ``await page.evaluate("expr")`` returns the expression's value (promises awaited);
  ``await page.wait_for("expr", timeout=5)`` polls until it is truthy and fails with the
  expression; ``await page.screenshot(path)`` saves a PNG.

Chromium's flags are the ones that work here as root in a container: no sandbox, no GPU, no
network features a test does not need (QUIC, component updates, sync), a fresh profile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
START_TIMEOUT = 20.0
CALL_TIMEOUT = 20.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)


def chromium_path() -> str | None:
    """The Chromium executable, or None (``FORKLAB_CHROMIUM`` overrides the search)."""
    explicit = os.environ.get("FORKLAB_CHROMIUM")
    if explicit:
        return explicit
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


class BrowserError(AssertionError):
    """Chromium did not start, or a protocol call failed."""


@dataclass(frozen=True)
class ConsoleEntry:
    level: str
    text: str


class Browser:
    def __init__(self, proc: subprocess.Popen[bytes], session: aiohttp.ClientSession) -> None:
        self._proc = proc
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._pages: dict[str, Page] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, profile: Path, *, width: int = 1600, height: int = 1000
    ) -> AsyncIterator[Browser]:
        executable = chromium_path()
        if executable is None:
            raise BrowserError("no Chromium found (install Debian's chromium package)")
        profile.mkdir(parents=True, exist_ok=True)
        log = (profile / "chromium.log").open("wb")
        proc = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        session = aiohttp.ClientSession()
        browser = cls(proc, session)
        try:
            await browser._connect(profile / "DevToolsActivePort")
            yield browser
        finally:
            await browser._close()
            await session.close()

    async def _connect(self, port_file: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not start (status {self._proc.poll()})")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = await self._session.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = message.json()
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(BrowserError(f"DevTools: {data['error']}"))
                    else:
                        future.set_result(data.get("result", {}))
            elif "sessionId" in data and data["sessionId"] in self._pages:
                self._pages[data["sessionId"]]._on_event(data["method"], data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("Chromium closed the DevTools connection"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Any:
        assert self._ws is not None
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_json(message)
        return await asyncio.wait_for(future, CALL_TIMEOUT)

    async def new_page(self, url: str) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        self._pages[page.session_id] = page
        await page.call("Runtime.enable")
        await page.call("Log.enable")
        await page.call("Page.enable")
        await page.goto(url)
        return page

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None and not self._ws.closed:
                await asyncio.wait_for(self.send("Browser.close"), 5)
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        # Chromium forks helpers (renderer, GPU, zygote) into its process group: stop them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)


class Page:
    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.console: list[ConsoleEntry] = []
        self.errors: list[str] = []
        self._loaded = asyncio.Event()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session_id)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(ConsoleEntry(params["type"], text))
            if params["type"] in ("error", "assert"):
                self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            exception = details.get("exception", {})
            self.errors.append(
                f"uncaught: {exception.get('description') or details.get('text')} "
                f"({details.get('url', '')}:{details.get('lineNumber', 0) + 1})"
            )
        elif method == "Log.entryAdded":
            entry = params["entry"]
            if entry["level"] == "error":
                self.errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")
        elif method == "Page.loadEventFired":
            self._loaded.set()

    async def goto(self, url: str) -> None:
        self._loaded.clear()
        result = await self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), CALL_TIMEOUT)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression!r} threw: {description}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 10.0) -> Any:
        """Poll until ``expression`` is truthy; its value. Fails naming the expression."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for: {expression}")
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """Click the element ``selector`` names (a DOM click, as a user's would dispatch)."""
        found = await self.evaluate(
            f"(() => {{ const el = document.querySelector({_js(selector)});"
            " if (!el) return false; el.click(); return true; })()"
        )
        if not found:
            raise AssertionError(f"nothing matches {selector!r}")

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the window, if it is taller)."""
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _js(value: str) -> str:
    """A JavaScript string literal."""
    return json.dumps(value)
