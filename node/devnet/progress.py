"""Progress for the devnet's slow steps (starting nodes, funding, syncing) on stderr.

On a terminal a step is one line redrawn in place: a spinner, a bar when the total is known,
and what it is waiting for, ending as a check mark and a summary. Anywhere else (a pipe, a log,
CI) a step prints its summary once when it ends, and nothing while it runs, so logs stay short
and the table or JSON on stdout stays clean either way.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
BAR_WIDTH = 24
REDRAW_EVERY = 0.08
"""Seconds between two redraws: updates in between only change what the next one shows."""


class Progress:
    """Makes :class:`Step` objects that draw on ``stream`` (stderr by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        redraw_every: float = REDRAW_EVERY,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.redraw_every = redraw_every

    def step(self, label: str, total: int | None = None) -> Step:
        return Step(self, label, total)

    def note(self, text: str) -> None:
        """A line of its own, whatever the stream."""
        print(text, file=self.stream, flush=True)


class Step:
    """One step; use as a context manager, :meth:`update` while it runs, :meth:`done` at the end.

    A step left by an exception clears its line and prints nothing: the error says enough.
    """

    def __init__(self, progress: Progress, label: str, total: int | None) -> None:
        self.progress = progress
        self.label = label
        self.total = total
        self.count = 0
        self.detail = ""
        self._frame = 0
        self._drawn = 0.0
        self._started = time.monotonic()
        self._finished = False

    def __enter__(self) -> Step:
        self._draw(force=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._finished:
            return
        if exc_type is None:
            self.done()
        elif self.progress.interactive:
            self._write("\r\x1b[2K")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def update(self, count: int | None = None, detail: str | None = None) -> None:
        if count is not None:
            self.count = count
        if detail is not None:
            self.detail = detail
        self._draw()

    def done(self, summary: str | None = None) -> None:
        self._finished = True
        text = summary or f"{self.label}: done"
        text = f"{text} ({self.elapsed:.1f} s)"
        if self.progress.interactive:
            self._write(f"\r\x1b[2K✔ {text}\n")
        else:
            self.progress.note(text)

    def _draw(self, *, force: bool = False) -> None:
        if not self.progress.interactive:
            return
        now = time.monotonic()
        if not force and now - self._drawn < self.progress.redraw_every:
            return
        self._drawn = now
        self._frame = (self._frame + 1) % len(SPINNER)
        parts = [SPINNER[self._frame], self.label]
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * self.count // self.total)
            parts.append("[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]")
            parts.append(f"{self.count}/{self.total}")
        if self.detail:
            parts.append(self.detail)
        self._write("\r\x1b[2K" + " ".join(parts))

    def _write(self, text: str) -> None:
        self.progress.stream.write(text)
        self.progress.stream.flush()
