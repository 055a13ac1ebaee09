"""The real side of a lesson: its own devnet next to the watched one, and what it borrows.

A real lesson runs on a devnet made for it by the fork lab's
:class:`~node.lab.runner_real.RealRunner` (as ``forklab scenario run --real`` does), in
:func:`lesson_dir`: next to the watched devnet, so a class finds it, and on ports the system
chooses, so it never collides with the class devnet's. This module holds the pieces around
that runner:

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
from collections.abc import Callable
from pathlib import Path

from node.devnet import Devnet, DevnetError
from node.devnet.state import load

log = logging.getLogger("forklab.dashboard")


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
