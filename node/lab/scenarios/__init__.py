"""Built-in scenarios: the classic lessons and attacks of the fork lab, as TOML files.

Each file is an ordinary scenario (``docs/forklab.md``), shipped with the package and addressed
by name: ``forklab scenario run fork-and-converge``. Each one explains itself (its
``explanation`` is the text the dashboard shows with the lesson) and asserts the outcome it is
about, so running it is also its test. ``forklab scenario show NAME`` prints one, to copy and
change.

What this package does not do: run them (:mod:`node.lab.runner_sim` and
:mod:`node.lab.runner_real` do).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from node.lab.scenario import Scenario, ScenarioError
from node.lab.scenario_toml import load_scenario, parse_scenario

SUFFIX = ".toml"


def names() -> tuple[str, ...]:
    """The built-in scenarios, by name, sorted."""
    folder = resources.files(__name__)
    return tuple(
        sorted(
            entry.name.removesuffix(SUFFIX)
            for entry in folder.iterdir()
            if entry.name.endswith(SUFFIX)
        )
    )


def text(name: str) -> str:
    """The file of built-in scenario ``name``; ScenarioError naming the built-ins if none."""
    if name not in names():
        raise ScenarioError(f"no built-in scenario {name!r} (built-ins: {', '.join(names())})")
    return (resources.files(__name__) / f"{name}{SUFFIX}").read_text(encoding="utf-8")


def builtin(name: str) -> Scenario:
    return parse_scenario(text(name), source=f"built-in {name}")


def find(name_or_path: str) -> Scenario:
    """A scenario file's path, or a built-in's name (a path wins if both exist)."""
    path = Path(name_or_path)
    if path.suffix == SUFFIX or path.exists():
        if not path.exists():
            raise ScenarioError(f"no scenario file {path}")
        return load_scenario(path)
    if name_or_path in names():
        return builtin(name_or_path)
    raise ScenarioError(
        f"{name_or_path!r} is neither a scenario file nor a built-in scenario "
        f"(built-ins: {', '.join(names())})"
    )
