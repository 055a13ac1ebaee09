"""Real ``forklab node`` processes for the API and command-line tests.

* ``start_node(datadir, *args)``: runs ``python -m node node`` on free loopback ports (port 0),
  waits for its ``ready`` line and returns a :class:`NodeProcess` with its addresses, an RPC
  client (cookie auth) and raw HTTP helpers. Its stderr goes to ``DATADIR.log``.
* ``node_factory(tmp_path)``: a generator for a fixture, yielding a factory of such processes
  and stopping every one at the end of the test (killing any that does not stop), so no
  process outlives its test.
* ``run_cli(*args)``: ``python -m node ARGS`` to completion (stdout, stderr, status).
* ``wait_until(predicate)``: poll until true or fail naming the predicate.

Processes are real: real sockets, real data directories, real signals. Nothing is mocked.
"""

from __future__ import annotations

import base64
import http.client
import inspect
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.rpc.auth import read_cookie
from node.rpc.client import RpcClient

REPO = Path(__file__).resolve().parent.parent
READY = re.compile(
    r"^forklab node ready: network (?P<network>\S+), height (?P<height>\d+), "
    r"p2p (?P<p2p>\S+), rpc (?P<rpc>http://\S+)$"
)
START_TIMEOUT = 30.0


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKLAB_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # Never the user's own ~/.forklab: every test names its data directory.
    env["HOME"] = "/nonexistent/forklab-test-home"
    if extra:
        env.update(extra)
    return env


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class NodeProcess:
    datadir: Path
    proc: subprocess.Popen[bytes]
    rpc_url: str
    p2p_address: str
    log_path: Path
    start_height: int
    _client: RpcClient | None = field(default=None, repr=False)

    @property
    def rpc_port(self) -> int:
        return int(self.rpc_url.rsplit(":", 1)[1])

    def client(self, timeout: float = 60.0) -> RpcClient:
        if self._client is None or self._client.timeout != timeout:
            self._client = RpcClient.from_datadir(self.rpc_url, self.datadir, timeout=timeout)
        return self._client

    def call(self, method: str, *params: Any) -> Any:
        return self.client().call(method, *params)

    def auth_header(self) -> str:
        user, password = read_cookie(self.datadir)
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def http(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        *,
        auth: str | bool | None = True,
        headers: dict[str, str] | None = None,
    ) -> HttpReply:
        """A raw HTTP request; ``auth=True`` sends the cookie, a string sends that header."""
        all_headers = dict(headers or {})
        if auth is True:
            all_headers["Authorization"] = self.auth_header()
        elif isinstance(auth, str):
            all_headers["Authorization"] = auth
        host, port = self.rpc_url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            payload = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            return HttpReply(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    def post_json(self, payload: Any, **kwargs: Any) -> HttpReply:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return self.http("POST", "/rpc", body, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"node did not stop within {timeout} s:\n{self.log()}") from None

    def wait(self, timeout: float = 15.0) -> int:
        status = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


def start_node(
    datadir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> NodeProcess:
    """Start ``forklab node`` in ``datadir`` on free ports; return once it is ready."""
    log_path = datadir.with_name(datadir.name + ".log")
    command = [sys.executable, "-m", "node", "node", "--datadir", str(datadir)]
    if not any(a.startswith("--listen") for a in args):
        command += ["--listen", "127.0.0.1:0"]
    if not any(a.startswith("--rpc-listen") for a in args):
        command += ["--rpc-listen", "127.0.0.1:0"]
    command += list(args)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log_file, env=_env(env), cwd=REPO
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                proc.kill()
                proc.wait()
                proc.stdout.close()
                raise AssertionError(
                    f"node not ready (status {proc.returncode}):\n{log_path.read_text()}"
                )
            if selector.select(min(remaining, 0.2)):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                line += chunk
    match = READY.match(line.decode().strip())
    assert match, f"unexpected first line {line!r}"
    return NodeProcess(
        datadir,
        proc,
        match["rpc"],
        match["p2p"],
        log_path,
        int(match["height"]),
    )


def node_factory(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """A factory of node processes (``nodes("a", "--connect", ...)``), all stopped afterwards.

    Test modules wrap it in a fixture: ``yield from node_factory(tmp_path)``.
    """
    started: list[NodeProcess] = []

    def factory(name: str = "node", *args: str, env: dict[str, str] | None = None) -> NodeProcess:
        node = start_node(tmp_path / name, *args, env=env)
        started.append(node)
        return node

    yield factory
    for node in started:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    for node in started:
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()


@dataclass(frozen=True)
class CliResult:
    status: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> CliResult:
    done = subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        env=_env(env),
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def wait_until(predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {inspect.getsource(predicate).strip()}")
