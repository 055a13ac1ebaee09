"""What the dashboard's buttons do, and the command that does the same in a terminal.

Every action is a small frozen dataclass, parsed and checked from the page's JSON by
:func:`parse_action`, so a malformed request is refused before anything is touched:

============  ========================  ==========================================================
action        JSON body                 devnet command shown beside the button
============  ========================  ==========================================================
mine          ``node``, ``blocks``,     ``forklab devnet mine NODE N [--to WALLET] --dir D``
              ``to`` (optional)
send          ``from``, ``to``,         ``forklab devnet send FROM TO AMOUNT --dir D``
              ``amount``
partition     ``groups`` (lists of      ``forklab devnet partition A,B C,D --dir D``
              node names)
heal          (nothing)                 ``forklab devnet heal --dir D``
kill          ``node``                  ``forklab devnet kill NODE --dir D``
restart       ``node``                  ``forklab devnet restart NODE --dir D``
latency       ``a``, ``b``, ``ms``      ``forklab devnet latency A B MS --dir D``
============  ========================  ==========================================================

A :class:`Controller` carries actions out and says which it can do. For a devnet,
:class:`~node.dashboard.devnet_control.DevnetController` does all of them through the devnet's
own code, and the command shown is the ``forklab devnet`` one. For nodes started by hand,
:class:`RpcController` works through their JSON-RPC (mining, paying from a node's wallet, and
partitions and latency with ``setlinkpolicy``) and shows the ``forklab rpc`` commands that do
the same; it cannot kill or restart processes it did not start.

What this module does not do: decide who may call it (the app checks the request's origin).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from node.core.errors import ForklabError
from node.dashboard.nodes import NodeApi, NodeCallError, NodeEndpoint, NodeUnavailableError
from node.dashboard.sources import StaticSource, link
from node.devnet.state import DevnetError
from node.devnet.topology import complete_partition

MAX_MINE = 1_000
"""Blocks one click may mine: enough for any lesson (a halving on regtest is 150)."""
MAX_LATENCY_MS = 60_000


class ActionError(ForklabError):
    """The action was refused or failed; the message is shown on the page as it is."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Mine:
    node: str
    blocks: int = 1
    to: str | None = None
    """Who the rewards pay: a wallet or node name, or an address; None for the default (the
    devnet's first wallet, or the node's own wallet). Two nodes mining on the same parent in
    the same second to the same payee find the very same block, so a lesson in which both
    sides of a partition mine should give them different payees."""


@dataclass(frozen=True)
class Send:
    source: str
    """A devnet wallet name, or (without a devnet) the node whose wallet pays."""
    target: str
    """A wallet name, a node name or an address."""
    amount: str
    """Coins as decimal text (``"1.5"``), passed on exactly."""


@dataclass(frozen=True)
class Partition:
    groups: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Heal:
    pass


@dataclass(frozen=True)
class Kill:
    node: str
    """A node or a miner."""


@dataclass(frozen=True)
class Restart:
    node: str
    """A node or a miner."""


@dataclass(frozen=True)
class Latency:
    a: str
    b: str
    ms: int


Action = Mine | Send | Partition | Heal | Kill | Restart | Latency

ACTION_NAMES: dict[type[Any], str] = {
    Mine: "mine",
    Send: "send",
    Partition: "partition",
    Heal: "heal",
    Kill: "kill",
    Restart: "restart",
    Latency: "latency",
}


def action_name(action: Action) -> str:
    return ACTION_NAMES[type(action)]


def parse_action(
    name: str, body: Mapping[str, Any], nodes: Sequence[str], miners: Sequence[str] = ()
) -> Action:
    """The action ``name`` with the page's parameters; ActionError saying what is wrong.

    ``kill`` and ``restart`` take a node or a miner; the other actions name nodes.
    """

    def node(key: str, choices: Sequence[str] = nodes) -> str:
        value = body.get(key)
        if not isinstance(value, str) or value not in choices:
            raise ActionError(f"{key}: choose one of {', '.join(choices)}, not {value!r}")
        return value

    def integer(key: str, low: int, high: int, default: int | None = None) -> int:
        value = body.get(key, default)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ActionError(f"{key}: a whole number from {low} to {high}, not {value!r}")
        return value

    def word(key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise ActionError(f"{key}: a name or an address without spaces, not {value!r}")
        return value.strip()

    if name == "mine":
        to = word("to") if body.get("to") not in (None, "") else None
        return Mine(node("node"), integer("blocks", 1, MAX_MINE, 1), to)
    if name == "send":
        return Send(word("from"), word("to"), _amount(body.get("amount")))
    if name == "partition":
        return Partition(_groups(body.get("groups"), nodes))
    if name == "heal":
        return Heal()
    if name == "kill":
        return Kill(node("node", [*nodes, *miners]))
    if name == "restart":
        return Restart(node("node", [*nodes, *miners]))
    if name == "latency":
        a, b = node("a"), node("b")
        if a == b:
            raise ActionError("latency: choose two different nodes")
        return Latency(a, b, integer("ms", 0, MAX_LATENCY_MS))
    raise ActionError(
        f"no action {name!r}; actions: {', '.join(ACTION_NAMES.values())}", status=404
    )


def _amount(value: Any) -> str:
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    try:
        coins = Decimal(text)
    except InvalidOperation:
        raise ActionError(f"amount: coins such as 1.5, not {value!r}") from None
    if not coins.is_finite() or coins <= 0 or coins != coins.quantize(Decimal("1e-8")):
        raise ActionError(
            f"amount: a positive number of coins with at most 8 decimals, not {value!r}"
        )
    return text


def _groups(value: Any, nodes: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Partition groups as the devnet takes them: named groups, the rest form one more."""
    if not isinstance(value, list) or not all(isinstance(g, list) for g in value):
        raise ActionError("groups: a list of lists of node names")
    try:
        return complete_partition([g for g in value if g], nodes)
    except DevnetError as err:
        raise ActionError(f"groups: {err}") from None


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


@dataclass(frozen=True)
class Outcome:
    """What an action did: a sentence for the page and the equivalent command."""

    message: str
    command: str
    result: Any = None


class Controller(Protocol):
    def supports(self, action_type: type[Any]) -> bool: ...

    async def command(self, action: Action) -> str:
        """The terminal command equivalent to ``action``."""
        ...

    async def perform(self, action: Action) -> Outcome: ...


class NodeDirectory(Protocol):
    """The nodes as the monitor knows them now (a restarted node may have moved)."""

    def endpoints(self) -> Mapping[str, NodeEndpoint]: ...

    def api(self, name: str) -> NodeApi: ...

    def p2p_address(self, name: str) -> str | None: ...


class RpcController:
    """Actions through the nodes' own JSON-RPC, for nodes started without a devnet.

    Mining is ``generatetoaddress`` to the node's address, a payment is ``sendtoaddress`` from
    the node's wallet, and partitions and latency are ``setlinkpolicy`` on each node (which
    replaces the node's whole policy: this controller assumes it is the only one setting them,
    and keeps what it set in ``conditions``). Killing and restarting a process is the devnet's
    job: the dashboard did not start the nodes.
    """

    def __init__(self, nodes: NodeDirectory, conditions: StaticSource) -> None:
        self._nodes = nodes
        self._conditions = conditions
        self._addresses: dict[str, str] = {}

    def supports(self, action_type: type[Any]) -> bool:
        return action_type in (Mine, Send, Partition, Heal, Latency)

    async def command(self, action: Action) -> str:
        """The commands, one a line; the addresses a node is paid at are asked of its wallet."""
        try:
            return "\n".join(command_line(argv) for argv in await self._argvs(action))
        except NodeCallError as exc:
            raise ActionError(f"the node refused: {exc.message} (code {exc.code})") from exc
        except NodeUnavailableError as exc:
            raise ActionError(str(exc), status=502) from exc

    async def _argvs(self, action: Action) -> list[list[str]]:
        if isinstance(action, Mine):
            address = await self._payee(action.to or action.node)
            words = self._reach(["forklab", "rpc"], action.node)
            return [[*words, "generatetoaddress", str(action.blocks), address]]
        if isinstance(action, Send):
            names = list(self._nodes.endpoints())
            if action.source not in names:
                raise ActionError(f"from: choose a node whose wallet pays ({', '.join(names)})")
            target = await self._payee(action.target)
            return [
                [*self._reach(["forklab", "wallet", "send"], action.source), target, action.amount]
            ]
        if isinstance(action, Partition | Heal):
            return [
                [*self._reach(["forklab", "rpc"], node), "setlinkpolicy", json.dumps(blocked)]
                for node, blocked in self._blocked(action).items()
            ]
        if isinstance(action, Latency):
            return [
                [
                    *self._reach(["forklab", "rpc"], node),
                    "--named",
                    "setlinkpolicy",
                    "latency_ms=" + json.dumps(delays),
                ]
                for node, delays in self._delays(action).items()
            ]
        raise ActionError(f"{action_name(action)} needs a devnet (forklab devnet up)", status=409)

    def _reach(self, words: list[str], node: str) -> list[str]:
        """``words`` followed by the options that reach ``node``."""
        endpoint = self._nodes.endpoints()[node]
        words = [*words, "--rpc", endpoint.rpc_url]
        if endpoint.datadir is not None:
            words += ["--datadir", str(endpoint.datadir)]
        return words

    def _address(self, node: str) -> str:
        address = self._nodes.p2p_address(node)
        if address is None:
            raise ActionError(f"{node} is not answering, so its P2P address is unknown", status=502)
        return address

    def _blocked(self, action: Partition | Heal) -> dict[str, list[str]]:
        """Node -> the P2P addresses it must refuse (every node of another group)."""
        names = list(self._nodes.endpoints())
        if isinstance(action, Heal):
            return {node: [] for node in names}
        side = {node: n for n, group in enumerate(action.groups) for node in group}
        return {
            node: sorted(self._address(other) for other in names if side[other] != side[node])
            for node in names
        }

    def _delays(self, action: Latency) -> dict[str, dict[str, int]]:
        """For both ends, the whole latency map they must hold once this link changes."""
        current = dict(self._conditions.current.latency)
        current[link(action.a, action.b)] = action.ms
        maps: dict[str, dict[str, int]] = {action.a: {}, action.b: {}}
        for (a, b), ms in current.items():
            if ms and a in maps:
                maps[a][self._address(b)] = ms
            if ms and b in maps:
                maps[b][self._address(a)] = ms
        return maps

    async def perform(self, action: Action) -> Outcome:
        command = await self.command(action)
        try:
            if isinstance(action, Mine):
                address = await self._payee(action.to or action.node)
                hashes = await self._nodes.api(action.node).call(
                    "generatetoaddress", action.blocks, address, timeout=120.0
                )
                return Outcome(f"{action.node} mined {len(hashes)} block(s)", command, hashes)
            if isinstance(action, Send):
                target = await self._payee(action.target)
                txid = await self._nodes.api(action.source).call(
                    "sendtoaddress", target, action.amount
                )
                message = f"{action.source} paid {action.amount} to {action.target}"
                return Outcome(message, command, txid)
            if isinstance(action, Partition | Heal):
                for node, blocked in self._blocked(action).items():
                    await self._nodes.api(node).call("setlinkpolicy", blocked)
                if isinstance(action, Heal):
                    self._conditions.record_partition(None)
                    return Outcome("the partition is healed", command)
                self._conditions.record_partition(action.groups)
                sides = " | ".join(",".join(group) for group in action.groups)
                return Outcome(f"partitioned: {sides}", command)
            if isinstance(action, Latency):
                for node, delays in self._delays(action).items():
                    await self._nodes.api(node).call("setlinkpolicy", None, delays)
                self._conditions.record_latency(action.a, action.b, action.ms)
                return Outcome(f"{action.a} ↔ {action.b}: {action.ms} ms each way", command)
        except NodeCallError as exc:
            raise ActionError(f"the node refused: {exc.message} (code {exc.code})") from exc
        except NodeUnavailableError as exc:
            raise ActionError(str(exc), status=502) from exc
        raise ActionError(f"{action_name(action)} needs a devnet (forklab devnet up)", status=409)

    async def _payee(self, name: str) -> str:
        """A node's payout address for a node name; anything else is taken as an address."""
        return await self.address_of(name) if name in self._nodes.endpoints() else name

    async def address_of(self, node: str) -> str:
        """The node's payout address: the configured one, else one from its wallet (kept)."""
        if node not in self._addresses:
            address = self._nodes.endpoints()[node].address
            if address is None:
                address = await self._nodes.api(node).call("getnewaddress")
            self._addresses[node] = str(address)
        return self._addresses[node]
