"""Detached processes: start them so they outlive the command, find them again, stop them.

``forklab devnet up`` returns while its nodes and miners keep running, so each is started in a
session of its own (``setsid``): Ctrl-C in the terminal does not reach it, and its process group
(the process and anything it spawns, such as the CPU miner's workers) can be signalled as one.
Its stdout and stderr go to a log file, where :func:`wait_ready` looks for its ready line.

A pid in the state file may be stale: the process died, or the system reused the number for
another program. :func:`running` therefore also checks, where ``/proc`` exists, that the
process's arguments still name the devnet (a node's data directory, say), and counts a zombie
(a process that exited but was not yet reaped by its parent) as gone.

Nothing here knows what a node or a miner is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from node.devnet.state import DevnetError

_PROC = Path("/proc")
POLL = 0.05


def spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` detached, stdout and stderr appended to ``log_path``; its pid.

    The new process leads its own session and process group (pgid = pid).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawn(
            argv[0], list(argv), dict(env), file_actions=file_actions, setsid=True
        )
    except OSError as exc:
        raise DevnetError(f"cannot start {' '.join(argv[:3])}...: {exc}") from exc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _signal_ok(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but not ours; the marker check below decides
    return True


def running(pid: int | None, *markers: str) -> bool:
    """Whether ``pid`` is a live process (not a zombie) that has each of ``markers`` among its
    command-line arguments (checked where ``/proc`` exists)."""
    if pid is None or pid <= 0:
        return False
    _reap(pid)
    if not _PROC.is_dir():
        return _signal_ok(pid)
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    if not markers:
        return True
    try:
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return all(marker.encode() in cmdline for marker in markers)


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child that exited (else nothing)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in process group ``pgid``."""
    _reap(pgid)
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # stat after the name: state, ppid, pgrp, ...
        if fields is not None and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
            return True
    return False


def signal_group(pgid: int, *, hard: bool = False) -> None:
    """Send SIGTERM (or SIGKILL) to process group ``pgid`` without waiting."""
    _killpg(pgid, signal.SIGKILL if hard else signal.SIGTERM)


def stop(pid: int, *, timeout: float = 15.0, hard: bool = False) -> None:
    """Stop process group ``pid``: SIGTERM (or SIGKILL if ``hard``), then SIGKILL after
    ``timeout`` seconds; returns once no process of the group is left."""
    signal_group(pid, hard=hard)
    deadline = time.monotonic() + timeout
    while group_alive(pid):
        if time.monotonic() >= deadline:
            _killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while group_alive(pid):
                if time.monotonic() >= deadline:
                    raise DevnetError(f"process group {pid} survived SIGKILL")
                time.sleep(POLL)
            return
        time.sleep(POLL)


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise DevnetError(f"not allowed to signal process {pgid}: {exc}") from exc


def wait_ready(
    pid: int, log_path: Path, offset: int, prefix: str, *, timeout: float, what: str
) -> str:
    """The first line starting with ``prefix`` written to ``log_path`` after ``offset``.

    DevnetError if the process exits first (with the end of its log, where the reason is) or
    ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = _read_from(log_path, offset)
        for line in text.splitlines():
            if line.startswith(prefix):
                return line
        if not running(pid):
            raise DevnetError(f"{what} exited during start-up:\n{_tail(text)}")
        if time.monotonic() >= deadline:
            raise DevnetError(f"{what} not ready after {timeout:g} s; see {log_path}")
        time.sleep(POLL)


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 8) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join("  " + line for line in kept) or "  (nothing in its log)"


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether binding ``host:port`` fails because something else holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The same option asyncio's servers set, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise DevnetError(f"cannot bind {host}:{port}: {exc}") from exc
    return False
