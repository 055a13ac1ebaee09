"""The real side of a lesson: its own devnet next to the watched one, and what it borrows.

A real lesson runs on a devnet made for it by the fork lab's
:class:`~node.lab.runner_real.RealRunner` (as ``forklab scenario run --real`` does), in
:func:`lesson_dir`: next to the watched devnet, so a class finds it, and on ports the system
chooses, so it never collides with the class devnet's. This module holds the pieces around
that runner:

- :class:`StoppableRunner`: the runner, stopped at its next look at the nodes once the lesson
  is stopped (the lab's runner has no stop of its own);
- :class:`LineStream`: the devnet's progress lines ("started n1, n2, n3, n4 (1.0 s)") as
  narration;
- :func:`still_running`: whether the lesson's directory is taken (another dashboard's lesson
  on the same devnet, or processes a killed dashboard left);
- :func:`pause_miners` and :func:`resume_miners`: the watched devnet's miners stopped while a
  lesson runs (two cores do not run two networks' miners well) and started again after;
- :func:`take_down`: stop and wipe a lesson's devnet, whatever state it is in.

What this module does not do: decide when any of this happens (:mod:`node.dashboard.lesson_runs`
does), or run scenarios itself.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.devnet import Devnet, DevnetError
from node.devnet.state import load
from node.lab.analysis import BlockInfo, TipView
from node.lab.runner_real import RealRunner

log = logging.getLogger("forklab.dashboard")


class LessonStopped(Exception):  # noqa: N818 (it is the event, not an error)
    """Raised in a runner's thread when the lesson was asked to stop."""


class StoppableRunner(RealRunner):
    """The real runner, stopped between two looks at the nodes when the lesson is stopped.

    Every wait and every ``mine`` by the miners polls :meth:`observe` or :meth:`tips`, so a
    stop takes effect within a poll (a step that is one blocking call finishes first).
    """

    def __init__(self, *args: Any, stop: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = stop

    def observe(self) -> dict[bytes, BlockInfo]:
        if self._stop.is_set():
            raise LessonStopped
        return super().observe()

    def tips(self) -> dict[str, TipView]:
        if self._stop.is_set():
            raise LessonStopped
        return super().tips()


class LineStream(io.StringIO):
    """A text stream that hands each complete line to ``say`` (the devnet's progress)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self._say = say
        self._buffer = ""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                self._say(line.strip())
        return len(text)


def lesson_dir(home: Path) -> Path:
    """Where a real lesson's devnet goes: next to the watched devnet's directory."""
    return home.with_name(home.name + "-lesson")


def still_running(root: Path) -> str | None:
    """Why a lesson cannot have its devnet in ``root`` now: processes of another devnet there
    (another dashboard's lesson on the same devnet, or one left by a dashboard that was killed);
    None if it is free (a stopped leftover is wiped when the lesson starts)."""
    devnet = Devnet(root)
    try:
        state = load(devnet.paths)
    except DevnetError as exc:
        return f"{root} holds a devnet that cannot be read ({exc})"
    if state is None:
        return None
    names = [*(n.name for n in state.nodes), *(m.name for m in state.miners)]
    running = [name for name in names if devnet.is_running(state, name)]
    if not running:
        return None
    return (
        f"a lesson's devnet already runs in {root} ({', '.join(running)}): another dashboard's "
        f"lesson, or one a stopped dashboard left (forklab devnet down --wipe --dir {root})"
    )


def pause_miners(home: Path) -> list[str]:
    """Stop the watched devnet's running miners (cleanly); their names."""
    devnet = Devnet(home)
    try:
        state = devnet.state()
    except DevnetError:
        return []
    paused = []
    for miner in state.miners:
        if devnet.is_running(state, miner.name):
            with contextlib.suppress(DevnetError):
                devnet.kill(miner.name, term=True)
                paused.append(miner.name)
    return paused


def resume_miners(home: Path, names: list[str]) -> None:
    devnet = Devnet(home)
    for name in names:
        try:
            devnet.restart(name)
        except DevnetError as exc:
            log.warning("could not resume miner %s of %s: %s", name, home, exc)


def take_down(devnet: Devnet) -> None:
    """Stop and wipe a lesson's devnet, if there is one."""
    with contextlib.suppress(DevnetError):
        devnet.down(wipe=True)
