"""The dashboard's buttons on a devnet: each action is the devnet's own code, as its command runs.

A click does exactly what ``forklab devnet ACTION ... --dir D`` does, through the same
:class:`~node.devnet.Devnet` methods, and the page shows that command so the class can type it.
The devnet's methods block (they take the devnet's lock, talk to nodes, wait for processes), so
each runs on a worker thread; the lock makes a click wait for a command typed in a terminal at
the same moment, never interleave with it.

Two choices differ from the command's defaults, and the command shown says so:

- ``heal`` does not wait for the nodes to agree (``--no-wait``): the page shows them
  converging, which is the point of the lesson;
- ``partition`` names every group, even the last one the command would imply, so the command
  shown reads as the picture: ``partition n1,n2 n3,n4``.

What this module does not do: start or stop the devnet itself (``forklab devnet up``/``down``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from node.dashboard.actions import (
    Action,
    ActionError,
    Heal,
    Kill,
    Latency,
    Mine,
    Outcome,
    Partition,
    Restart,
    Send,
    action_name,
    command_line,
)
from node.devnet import Devnet, DevnetError
from node.rpc.client import RpcCallError, RpcConnectionError


def devnet_argv(action: Action, devnet_dir: Path) -> list[str]:
    """The ``forklab devnet`` command line that does what the dashboard does for ``action``."""
    words: list[str] = ["forklab", "devnet", action_name(action)]
    if isinstance(action, Mine):
        words += [action.node, str(action.blocks)]
        if action.to is not None:
            words += ["--to", action.to]
    elif isinstance(action, Send):
        words += [action.source, action.target, action.amount]
    elif isinstance(action, Partition):
        words += [",".join(group) for group in action.groups]
    elif isinstance(action, Heal):
        words.append("--no-wait")
    elif isinstance(action, Kill | Restart):
        words.append(action.node)
    elif isinstance(action, Latency):
        words += [action.a, action.b, str(action.ms)]
    return [*words, "--dir", str(devnet_dir)]


class DevnetController:
    """Every action, through the devnet in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devnet = Devnet(root)

    def supports(self, action_type: type[Any]) -> bool:
        return True

    async def command(self, action: Action) -> str:
        return command_line(devnet_argv(action, self.root))

    async def perform(self, action: Action) -> Outcome:
        try:
            message, result = await asyncio.to_thread(self._run, action)
        except DevnetError as exc:
            raise ActionError(str(exc), status=409) from exc
        except RpcCallError as exc:
            raise ActionError(f"the node refused: {exc.message} (code {exc.code})") from exc
        except RpcConnectionError as exc:
            raise ActionError(str(exc), status=502) from exc
        return Outcome(message, command_line(devnet_argv(action, self.root)), result)

    def _run(self, action: Action) -> tuple[str, Any]:
        devnet = self.devnet
        if isinstance(action, Mine):
            hashes = devnet.mine(action.node, action.blocks, action.to)
            return f"{action.node} mined {len(hashes)} block(s)", hashes
        if isinstance(action, Send):
            txid = devnet.send(action.source, action.target, action.amount)
            return f"{action.source} paid {action.amount} to {action.target}", txid
        if isinstance(action, Partition):
            groups = devnet.partition([",".join(group) for group in action.groups])
            return "partitioned: " + " | ".join(",".join(g) for g in groups), None
        if isinstance(action, Heal):
            devnet.heal(wait=False)
            return "healed: the nodes reconnect and converge on one tip", None
        if isinstance(action, Kill):
            devnet.kill(action.node)
            return f"killed {action.node} (as a crash: SIGKILL)", None
        if isinstance(action, Restart):
            height = devnet.restart(action.node)
            caught_up = f", caught up at height {height}" if height is not None else ""
            return f"restarted {action.node}{caught_up}", height
        devnet.latency(action.a, action.b, action.ms)
        if action.ms:
            return f"latency {action.a} ↔ {action.b}: {action.ms} ms each way", None
        return f"latency {action.a} ↔ {action.b} removed", None
