"""What a devnet directory holds, and the state file that lets every ``forklab devnet`` command
find the processes an earlier one started.

Layout of a devnet directory (``--dir``, default ``$XDG_STATE_HOME/forklab/devnet``)::

    devnet.json          the state file (below)
    devnet.lock          held (flock) by the command changing the devnet
    nodes/NAME/          each node's data directory: chain, wallet, .cookie
    logs/NAME.log        each node's, miner's and the dashboard's stdout and stderr

The state file is JSON, written atomically (a temporary file renamed over the old one), so a
reader sees the old or the new state, never half of one:

===============  ===========================  ===============================================
key              type                         meaning
===============  ===========================  ===============================================
``format``       string                       ``forklab-devnet/1``; anything else is refused
``network``      string                       regtest or demo
``seed``         integer                      seeds the random topology and the miners
``topology``     string                       line, ring, mesh or random:K
``block_time``   number                       mean seconds between blocks, all miners together
``wallets``      list of strings              names (and seeds) of the funded wallets
``funded``       boolean                      whether the funding blocks were mined
``miner_backend`` string                      cpu, opencl or auto
``nodes``        list of objects              ``name``, ``p2p_port``, ``rpc_port``, ``pid``
``miners``       list of objects              ``name``, ``node``, ``share``, ``pid``
``partition``    list of lists, or null       the partition groups in force
``latency``      list of objects              ``a``, ``b``, ``ms``: one-way delay on a link
``dashboard``    object, or null              ``port``, ``pid``: the devnet's dashboard; null
                                              for none (absent in files written before the
                                              devnet ran one: none either)
===============  ===========================  ===============================================

``pid`` is null for a process the devnet did not start or has stopped; a recorded pid is only
trusted after checking the process still runs the devnet's command (:mod:`node.devnet.procs`).

What this module does not do: start or signal processes, or talk to nodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node.core.errors import ForklabError

FORMAT = "forklab-devnet/1"
STATE_FILE = "devnet.json"
LOCK_FILE = "devnet.lock"
NETWORKS = ("regtest", "demo")
"""``main`` is left out on purpose: its difficulty makes a local network of it pointless."""
DASHBOARD = "dashboard"
"""The dashboard's name in commands (``kill``, ``restart``, ``logs``) and its log file's; no
node (``nK``) or miner (``mK``) can be called that."""


class DevnetError(ForklabError):
    """A devnet command cannot do what was asked; the message says why and what to do."""


def default_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user devnet directory: ``$XDG_STATE_HOME/forklab/devnet`` (XDG's default
    ``~/.local/state`` when unset), never one relative to where the command runs."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "forklab" / "devnet"


@dataclass(frozen=True)
class DevnetPaths:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    def datadir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def cookie(self, node: str) -> Path:
        return self.datadir(node) / ".cookie"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


@dataclass(frozen=True)
class NodeEntry:
    name: str
    p2p_port: int
    """0 until the node first bound a port chosen by the system (``--base-port 0``)."""
    rpc_port: int
    pid: int | None = None

    @property
    def p2p_address(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"


@dataclass(frozen=True)
class MinerEntry:
    name: str
    node: str
    """The node whose templates it mines on and to which it submits."""
    share: float
    """Its fraction of the devnet's hash power (the shares of all miners add up to 1)."""
    pid: int | None = None


@dataclass(frozen=True)
class DashboardEntry:
    """The devnet's web page (``forklab dashboard --dir D``), a process like the nodes."""

    port: int
    """0 until it first bound a port chosen by the system; kept for later starts."""
    pid: int | None = None

    @property
    def name(self) -> str:
        return DASHBOARD

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None


Process = NodeEntry | MinerEntry | DashboardEntry
"""Whatever the devnet starts and stops, each found by its name."""


@dataclass(frozen=True)
class Latency:
    a: str
    b: str
    ms: int


@dataclass(frozen=True)
class DevnetState:
    network: str
    seed: int
    topology: str
    block_time: float
    wallets: tuple[str, ...]
    nodes: tuple[NodeEntry, ...]
    miners: tuple[MinerEntry, ...] = ()
    miner_backend: str = "cpu"
    funded: bool = False
    partition: tuple[tuple[str, ...], ...] | None = None
    latency: tuple[Latency, ...] = field(default=())
    dashboard: DashboardEntry | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def node(self, name: str) -> NodeEntry:
        for entry in self.nodes:
            if entry.name == name:
                return entry
        raise DevnetError(f"no node {name!r} in this devnet (nodes: {', '.join(self.names)})")

    def index(self, name: str) -> int:
        return self.names.index(self.node(name).name)

    def miner(self, name: str) -> MinerEntry:
        for entry in self.miners:
            if entry.name == name:
                return entry
        known = ", ".join(m.name for m in self.miners) or "none"
        raise DevnetError(f"no miner {name!r} in this devnet (miners: {known})")

    @property
    def processes(self) -> tuple[Process, ...]:
        """Every process of the devnet: nodes, miners, then the dashboard if it has one."""
        dashboard = () if self.dashboard is None else (self.dashboard,)
        return (*self.nodes, *self.miners, *dashboard)

    def process(self, name: str) -> Process:
        """The node, miner or dashboard called ``name``; DevnetError listing them if none is."""
        for entry in self.processes:
            if entry.name == name:
                return entry
        if name == DASHBOARD:
            raise DevnetError(
                "this devnet has no dashboard; add one with: forklab devnet up --dashboard"
            )
        known = ", ".join(p.name for p in self.processes)
        raise DevnetError(f"no node or miner {name!r} in this devnet ({known})")

    def with_node(self, entry: NodeEntry) -> DevnetState:
        return replace(self, nodes=tuple(entry if n.name == entry.name else n for n in self.nodes))

    def with_miner(self, entry: MinerEntry) -> DevnetState:
        miners = tuple(entry if m.name == entry.name else m for m in self.miners)
        return replace(self, miners=miners)

    def with_pid(self, name: str, pid: int | None) -> DevnetState:
        """The state with process ``name``'s pid replaced (None: not running)."""
        entry = self.process(name)
        if isinstance(entry, NodeEntry):
            return self.with_node(replace(entry, pid=pid))
        if isinstance(entry, MinerEntry):
            return self.with_miner(replace(entry, pid=pid))
        return replace(self, dashboard=replace(entry, pid=pid))

    def without_pids(self, pids: Container[int | None] | None = None) -> DevnetState:
        """The state with the pids of every process (or those in ``pids``) cleared."""
        state = self
        for entry in self.processes:
            if entry.pid is not None and (pids is None or entry.pid in pids):
                state = state.with_pid(entry.name, None)
        return state

    def latency_between(self, a: str, b: str) -> int:
        for link in self.latency:
            if {link.a, link.b} == {a, b}:
                return link.ms
        return 0

    def with_latency(self, a: str, b: str, ms: int) -> DevnetState:
        kept = tuple(link for link in self.latency if {link.a, link.b} != {a, b})
        return replace(self, latency=kept + ((Latency(a, b, ms),) if ms else ()))

    # -- JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "network": self.network,
            "seed": self.seed,
            "topology": self.topology,
            "block_time": self.block_time,
            "wallets": list(self.wallets),
            "funded": self.funded,
            "miner_backend": self.miner_backend,
            "nodes": [
                {"name": n.name, "p2p_port": n.p2p_port, "rpc_port": n.rpc_port, "pid": n.pid}
                for n in self.nodes
            ],
            "miners": [
                {"name": m.name, "node": m.node, "share": m.share, "pid": m.pid}
                for m in self.miners
            ],
            "partition": None if self.partition is None else [list(g) for g in self.partition],
            "latency": [{"a": x.a, "b": x.b, "ms": x.ms} for x in self.latency],
            "dashboard": None
            if self.dashboard is None
            else {"port": self.dashboard.port, "pid": self.dashboard.pid},
        }

    @classmethod
    def from_json(cls, data: Any) -> DevnetState:
        """Parse a state file's content; DevnetError naming the first thing wrong with it."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DevnetError(f"not a {FORMAT} state file")
        try:
            partition = data["partition"]
            return cls(
                network=_choice(data["network"], NETWORKS, "network"),
                seed=_int(data["seed"], "seed"),
                topology=_str(data["topology"], "topology"),
                block_time=_number(data["block_time"], "block_time"),
                wallets=tuple(_str(w, "wallets") for w in _list(data["wallets"], "wallets")),
                funded=_bool(data["funded"], "funded"),
                miner_backend=_str(data["miner_backend"], "miner_backend"),
                nodes=tuple(_node(n) for n in _list(data["nodes"], "nodes")),
                miners=tuple(_miner(m) for m in _list(data["miners"], "miners")),
                partition=None
                if partition is None
                else tuple(
                    tuple(_str(name, "partition") for name in _list(group, "partition"))
                    for group in _list(partition, "partition")
                ),
                latency=tuple(
                    Latency(_str(x["a"], "latency"), _str(x["b"], "latency"), _int(x["ms"], "ms"))
                    for x in _list(data["latency"], "latency")
                ),
                dashboard=_dashboard(data.get("dashboard")),
            )
        except KeyError as exc:
            raise DevnetError(f"the state file lacks {exc}") from None
        except TypeError as exc:
            raise DevnetError(f"the state file is malformed: {exc}") from None


def _fail(what: str, value: Any) -> DevnetError:
    return DevnetError(f"the state file's {what} is malformed: {value!r}")


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(what, value)
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(what, value)
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(what, value)
    return float(value)


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(what, value)
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(what, value)
    return value


def _choice(value: Any, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise _fail(what, value)
    return str(value)


def _pid(value: Any) -> int | None:
    return None if value is None else _int(value, "pid")


def _node(obj: Any) -> NodeEntry:
    if not isinstance(obj, dict):
        raise _fail("nodes", obj)
    return NodeEntry(
        _str(obj["name"], "node name"),
        _int(obj["p2p_port"], "p2p_port"),
        _int(obj["rpc_port"], "rpc_port"),
        _pid(obj["pid"]),
    )


def _miner(obj: Any) -> MinerEntry:
    if not isinstance(obj, dict):
        raise _fail("miners", obj)
    return MinerEntry(
        _str(obj["name"], "miner name"),
        _str(obj["node"], "miner node"),
        _number(obj["share"], "share"),
        _pid(obj["pid"]),
    )


def _dashboard(obj: Any) -> DashboardEntry | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise _fail("dashboard", obj)
    return DashboardEntry(_int(obj["port"], "dashboard port"), _pid(obj["pid"]))


def load(paths: DevnetPaths) -> DevnetState | None:
    """The devnet's state, or None when the directory holds none."""
    try:
        text = paths.state_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevnetError(f"cannot read {paths.state_file}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError:
        raise DevnetError(f"{paths.state_file} is not JSON; is it a devnet directory?") from None
    try:
        return DevnetState.from_json(data)
    except DevnetError as exc:
        raise DevnetError(f"{paths.state_file}: {exc}") from None


def save(paths: DevnetPaths, state: DevnetState) -> None:
    tmp = paths.state_file.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, paths.state_file)
    except OSError as exc:
        raise DevnetError(f"cannot write {paths.state_file}: {exc}") from exc


@contextlib.contextmanager
def locked(paths: DevnetPaths) -> Iterator[None]:
    """Hold the devnet's lock: commands that change it run one at a time.

    Waits (does not fail) for another command to finish; the lock is released if the process
    dies, so a crashed command never leaves the devnet locked.
    """
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DevnetError(f"cannot use the devnet directory {paths.root}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
