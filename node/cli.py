"""The ``forklab`` command: one entry point, a subcommand per job.

Each area registers its own subcommands (``register(subparsers)`` in ``node.commands.*`` and
``miner.cli.add_commands``), so this module only assembles them and turns forklab's errors into
one clear line and an exit status instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from node import __version__
from node.core.errors import ForklabError

# (module, registration function): each adds its subcommands to the parser.
_COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("node.commands.chain", "register"),
    ("node.commands.node", "register"),
    ("node.commands.rpc", "register"),
    ("node.commands.wallet", "register"),
    ("node.commands.devnet", "register"),
    ("node.commands.dashboard", "register"),
    ("node.commands.lab", "register"),
    ("miner.cli", "add_commands"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forklab",
        description="A small but real peer-to-peer blockchain to learn, build and break things.",
    )
    parser.add_argument("--version", action="version", version=f"forklab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name, function_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = getattr(
            module, function_name
        )
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ForklabError as exc:
        print(f"forklab {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`forklab devnet status | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
