"""Who may call the API: bitcoind's cookie file and explicit user/password, over HTTP basic auth.

At start the node writes ``.cookie`` in its data directory, readable by its owner only (0600),
holding ``__cookie__:SECRET`` with 32 fresh random bytes in hex; whoever can read the data
directory can call the node, nobody else can, and no password is ever configured by hand. A
clean stop removes the file; a stale one left by a crash is replaced at the next start. An
explicit ``rpc_user``/``rpc_password`` pair is accepted as well, for callers on other machines.

Credentials are compared in constant time: both sides are hashed to a fixed length first (so
the comparison leaks neither the secret's length nor a matching prefix), then compared with
:func:`hmac.compare_digest`, and every accepted pair is checked on every request.

Which routes need credentials is the server's decision (:mod:`node.rpc.server`): JSON-RPC
always; the read-only REST routes, the event stream and the metrics only when configured so.
The random secret comes from the operating system (:mod:`secrets`), never from the node's
runtime random source, which may be seeded to make a simulation repeatable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from node.core.errors import ForklabError

COOKIE_FILE = ".cookie"
COOKIE_USER = "__cookie__"
COOKIE_SECRET_BYTES = 32


class AuthError(ForklabError):
    """Credentials could not be found or read (no cookie file, unreadable, malformed)."""


def _digest(user_colon_password: str) -> bytes:
    return hashlib.sha256(user_colon_password.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class Credentials:
    """The ``user:password`` pairs the server accepts, kept only as SHA-256 digests."""

    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Credentials:
        return cls(tuple(_digest(f"{user}:{password}") for user, password in pairs))

    def check_header(self, authorization: str | None) -> bool:
        """Whether an HTTP ``Authorization`` header carries an accepted pair."""
        user_pass = parse_basic_auth(authorization)
        if user_pass is None:
            return False
        given = _digest(user_pass)
        accepted = False
        # No early exit: the time taken does not depend on which pair matched.
        for expected in self.digests:
            accepted |= hmac.compare_digest(given, expected)
        return accepted


def parse_basic_auth(authorization: str | None) -> str | None:
    """The ``user:password`` text of a basic-auth header, or None if there is none."""
    if authorization is None or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    text = decoded.decode("utf-8", "surrogateescape")
    return text if ":" in text else None


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class CookieFile:
    """The ``.cookie`` of one running node: created at start, removed at a clean stop."""

    def __init__(self, path: Path, password: str) -> None:
        self.path = path
        self.password = password

    @property
    def user(self) -> str:
        return COOKIE_USER

    @classmethod
    def create(cls, datadir: Path) -> CookieFile:
        """Write a fresh cookie atomically with mode 0600 (no window where others may read it)."""
        password = secrets.token_hex(COOKIE_SECRET_BYTES)
        path = datadir / COOKIE_FILE
        tmp = datadir / (COOKIE_FILE + ".tmp")
        try:
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{COOKIE_USER}:{password}")
            os.replace(tmp, path)
        except OSError as exc:
            raise AuthError(f"cannot write the RPC cookie file {path}: {exc}") from exc
        return cls(path, password)

    def remove(self) -> None:
        """Delete the file if it is still ours (another node may have replaced it since)."""
        try:
            if self.path.read_text(encoding="ascii") == f"{COOKIE_USER}:{self.password}":
                self.path.unlink()
        except OSError:
            pass


def read_cookie(datadir: Path) -> tuple[str, str]:
    """The ``(user, password)`` in a data directory's cookie file, for clients."""
    path = datadir / COOKIE_FILE
    try:
        return read_cookie_file(path)
    except AuthError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise AuthError(
                f"no RPC cookie at {path}: is a node running with this data directory? "
                "(or pass --rpc-user and --rpc-password)"
            ) from None
        raise


def read_cookie_file(path: Path) -> tuple[str, str]:
    """The ``(user, password)`` in a cookie file (``user:password``) wherever it is."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"cannot read the RPC cookie {path}: {exc}") from exc
    user, sep, password = text.partition(":")
    if not sep or not password:
        raise AuthError(f"the RPC cookie {path} is malformed")
    return user, password
