"""Scenario files: TOML in, :class:`~node.lab.scenario.Scenario` out, and back.

A file has a ``[scenario]`` table, optional ``[params]``, and arrays of tables ``[[node]]``,
``[[miner]]``, ``[[link]]`` and ``[[step]]`` (``docs/forklab.md`` has every key in a table)::

    [scenario]
    name = "fork-and-converge"
    topology = "line"
    nodes = ["a", "b", "c", "d"]        # or one [[node]] table each

    [[step]]
    do = "partition"
    groups = [["a", "b"], ["c", "d"]]

    [[step]]
    do = "mine"
    node = "a"
    blocks = 2

**Errors say where.** A file that is not TOML gives the parser's line and column; a file that
is TOML but not a scenario names the line of the offending key (or of its table's header) and
the step: ``fork.toml:14: step 3 (partition): there is no node 'e' (nodes: a, b, c, d)``.
Unknown keys are errors too (with the closest known key), so a misspelt option is never
silently ignored.

**Writing** (:func:`dump_scenario`) gives a file that loads back to an equal scenario, floats
included (written in Python's shortest round-trip form): a shrunk fuzzer case is such a file,
and replaying it must run exactly what the fuzzer ran.

What this module does not do: check what a scenario means (the model does, when built), or
find built-in scenarios (:mod:`node.lab.scenarios`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from node.lab.conditions import Condition, ConditionError, suggest
from node.lab.scenario import (
    STEPS,
    STRATEGIES,
    Honest,
    LinkDecl,
    MinerDecl,
    NodeDecl,
    Scenario,
    ScenarioError,
    Step,
    coins,
    format_coins,
)

# What each key holds: the converters below read TOML values of that kind, the writers write
# them back. "names" is a list of names, "groups" a list of lists of names.
Kind = str

SCENARIO_KEYS: dict[str, Kind] = {
    "name": "text",
    "title": "text",
    "explanation": "text",
    "seed": "int",
    "network": "text",
    "interval": "float",
    "topology": "text",
    "latency": "float",
    "nodes": "names",
    "wallets": "names",
    "invariants": "names",
    "step_errors": "text",
    "time_limit": "float?",
}
NODE_KEYS: dict[str, Kind] = {"name": "text", "clock_offset": "float", "persistent": "bool"}
LINK_KEYS: dict[str, Kind] = {
    "a": "text",
    "b": "text",
    "between": "groups",
    "latency": "float?",
    "jitter": "float",
    "bandwidth": "float?",
    "loss": "float",
}
MINER_KEYS: dict[str, Kind] = {"name": "text", "node": "text", "share": "float", "strategy": "text"}
STRATEGY_KEYS: dict[str, dict[str, Kind]] = {
    "honest": {},
    "selfish": {"publish_via": "names"},
    "censoring": {"addresses": "names", "orphan": "bool", "give_up_after": "int?"},
    "double-spend": {
        "merchant": "text",
        "amount": "coins",
        "start_height": "int",
        "merchant_node": "text",
        "confirmations": "int",
        "give_up_behind": "int",
        "fee_rate": "int",
    },
}
STEP_KEYS: dict[str, dict[str, Kind]] = {
    "partition": {"groups": "groups"},
    "heal": {},
    "kill": {"node": "text"},
    "restart": {"node": "text"},
    "latency": {"a": "text", "b": "text", "seconds": "float"},
    "share": {"miner": "text", "share": "float"},
    "send": {
        "from": "text",
        "to": "text",
        "amount": "coins",
        "via": "text?",
        "label": "text?",
        "fee_rate": "int?",
        "conflicts": "text?",
    },
    "mine": {"blocks": "int", "node": "text?", "miner": "text?", "to": "text?"},
    "wait": {"seconds": "float?", "until": "condition?", "timeout": "float", "mining": "bool"},
    "assert": {"that": "condition", "message": "text"},
    "note": {"text": "text"},
}
_TOP = ""
"""The section of errors about the file's top level (a table or key nobody knows)."""
_ATTRIBUTE = {"from": "sender"}
"""TOML keys whose attribute has another name (``from`` is a Python keyword)."""


# ---------------------------------------------------------------------------------- load


def load_scenario(path: Path) -> Scenario:
    """The scenario in ``path``; ScenarioError saying where if it is not a valid one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(_toml_error(source, str(exc))) from None
    lines = _Lines(text)
    try:
        return _build(data)
    except ScenarioError as exc:
        line = lines.find(exc.section, exc.index, exc.key)
        where = f"{source}:{line}" if line is not None else source
        raise ScenarioError(
            f"{where}: {exc}", section=exc.section, index=exc.index, key=exc.key
        ) from None


def _toml_error(source: str, message: str) -> str:
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match is None:
        return f"{source}: not valid TOML: {message}"
    what = message[: match.start()].strip()
    return f"{source}:{match.group(1)}: not valid TOML: {what} (column {match.group(2)})"


def _build(data: Mapping[str, Any]) -> Scenario:
    tables = ("scenario", "params", "node", "miner", "link", "step")
    for key in data:
        if key not in tables:
            raise ScenarioError(
                f"unknown table or key {key!r}{suggest(key, tables)} (a scenario file has "
                "[scenario], [params], [[node]], [[miner]], [[link]] and [[step]])",
                section=_TOP,
                key=key,
            )
    head = data.get("scenario")
    if not isinstance(head, dict):
        raise ScenarioError("a scenario file starts with a [scenario] table", section="scenario")
    _known(head, tuple(SCENARIO_KEYS), "scenario", None, "[scenario]")
    fields = _read(head, SCENARIO_KEYS, "scenario", None, "[scenario]")
    if "name" not in fields:
        raise ScenarioError("[scenario] needs a name", section="scenario")
    nodes = _nodes(data, fields.pop("nodes", None))
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ScenarioError("[params] is a table of constants", section="params")
    return Scenario(
        nodes=nodes,
        params=tuple(params.items()),
        wallets=tuple(fields.pop("wallets", ())),
        invariants=tuple(fields.pop("invariants", ())),
        miners=tuple(_miner(i, t) for i, t in enumerate(_tables(data, "miner"))),
        links=tuple(link for i, t in enumerate(_tables(data, "link")) for link in _links(i, t)),
        steps=tuple(_step(i, t) for i, t in enumerate(_tables(data, "step"))),
        **fields,
    )


def _tables(data: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    tables = data.get(section, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ScenarioError(f"write each {section} as a [[{section}]] table", section=section)
    return tables


def _nodes(data: Mapping[str, Any], listed: list[str] | None) -> tuple[NodeDecl, ...]:
    tables = _tables(data, "node")
    if listed is not None and tables:
        raise ScenarioError(
            "nodes are listed in [scenario] and declared as [[node]] tables: choose one",
            section="scenario",
            key="nodes",
        )
    if listed is not None:
        return tuple(NodeDecl(name) for name in listed)
    nodes = []
    for index, table in enumerate(tables):
        where = f"node {index + 1}"
        _known(table, tuple(NODE_KEYS), "node", index, where)
        fields = _read(table, NODE_KEYS, "node", index, where)
        if "name" not in fields:
            raise ScenarioError(f"{where} needs a name", section="node", index=index)
        nodes.append(NodeDecl(**fields))
    return tuple(nodes)


def _miner(index: int, table: dict[str, Any]) -> MinerDecl:
    where = f"miner {table.get('name', index + 1)!r}"
    kind = table.get("strategy", "honest")
    if kind not in STRATEGY_KEYS:
        raise ScenarioError(
            f"{where}: unknown strategy {kind!r}{suggest(str(kind), STRATEGY_KEYS)} "
            f"(strategies: {', '.join(STRATEGY_KEYS)})",
            section="miner",
            index=index,
            key="strategy",
        )
    options = STRATEGY_KEYS[kind]
    _known(table, (*MINER_KEYS, *options), "miner", index, f"{where} ({kind})")
    fields = _read(table, MINER_KEYS, "miner", index, where)
    _required(MinerDecl, fields, "miner", index, where)
    fields.pop("strategy", None)
    strategy_fields = _read(table, options, "miner", index, f"{where} ({kind})")
    strategy_class = STRATEGIES[kind]
    _required(strategy_class, strategy_fields, "miner", index, f"{where} ({kind})")
    return MinerDecl(strategy=strategy_class(**strategy_fields), **fields)


def _links(index: int, table: dict[str, Any]) -> list[LinkDecl]:
    where = f"link {index + 1}"
    _known(table, tuple(LINK_KEYS), "link", index, where)
    fields = _read(table, LINK_KEYS, "link", index, where)
    between = fields.pop("between", None)
    if between is not None:
        if "a" in fields or "b" in fields:
            raise ScenarioError(
                f"{where}: give a and b, or between, not both",
                section="link",
                index=index,
                key="between",
            )
        if len(between) != 2:
            raise ScenarioError(
                f"{where}: between is two groups of nodes, [[...], [...]]",
                section="link",
                index=index,
                key="between",
            )
        return [LinkDecl(a, b, **fields) for a in between[0] for b in between[1]]
    if "a" not in fields or "b" not in fields:
        raise ScenarioError(
            f"{where}: give the nodes a and b (or between)", section="link", index=index
        )
    return [LinkDecl(**fields)]


def _step(index: int, table: dict[str, Any]) -> Step:
    kind = table.get("do")
    if not isinstance(kind, str) or kind not in STEPS:
        shown = f"{kind!r}{suggest(kind, STEPS)}" if isinstance(kind, str) else "nothing"
        raise ScenarioError(
            f"step {index + 1}: 'do' says what it does; got {shown} (steps: {', '.join(STEPS)})",
            section="step",
            index=index,
            key="do",
        )
    where = f"step {index + 1} ({kind})"
    keys = STEP_KEYS[kind]
    _known(table, ("do", *keys), "step", index, where)
    fields = {_ATTRIBUTE.get(k, k): v for k, v in _read(table, keys, "step", index, where).items()}
    cls = STEPS[kind]
    _required(cls, fields, "step", index, where)
    return cls(**fields)


def _required(
    cls: type[Any], fields: Mapping[str, Any], section: str, index: int, where: str
) -> None:
    reverse = {v: k for k, v in _ATTRIBUTE.items()}
    for field in dataclasses.fields(cls):
        missing = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        if missing and field.init and field.name not in fields:
            key = reverse.get(field.name, field.name)
            raise ScenarioError(f"{where} needs {key}", section=section, index=index)


def _known(
    table: Mapping[str, Any], keys: tuple[str, ...], section: str, index: int | None, where: str
) -> None:
    for key in table:
        if key not in keys:
            raise ScenarioError(
                f"{where}: unknown key {key!r}{suggest(key, keys)}",
                section=section,
                index=index,
                key=key,
            )


def _read(
    table: Mapping[str, Any], kinds: Mapping[str, Kind], section: str, index: int | None, where: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, kind in kinds.items():
        if key not in table:
            continue
        try:
            fields[key] = _CONVERT[kind.rstrip("?")](table[key])
        except (TypeError, ValueError, ConditionError) as exc:
            raise ScenarioError(
                f"{where}: {key}: {exc}", section=section, index=index, key=key
            ) from None
    return fields


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {_what(value)}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a whole number, not {_what(value)}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, not {_what(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, not {value}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, not {_what(value)}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"expected a list of names, not {_what(value)}")
    return tuple(value)


def _groups(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of groups of names, [[...], [...]], not {_what(value)}")
    return tuple(_names(group) for group in value)


def _coins(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f'expected an amount of coins (2.5 or "2.5"), not {_what(value)}')
    return coins(value)


def _condition(value: Any) -> Condition:
    return Condition.parse(_text(value))


def _what(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__) + f" ({value!r})"[:40]


_CONVERT: dict[Kind, Callable[[Any], Any]] = {
    "text": _text,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "names": _names,
    "groups": _groups,
    "coins": _coins,
    "condition": _condition,
}


class _Lines:
    """Where tables and keys are in the file's text, to point errors at a line.

    TOML parsers give values, not positions; the headers (``[scenario]``, the n-th
    ``[[step]]``) and ``key =`` lines are found in the text instead. A key written inline
    (``steps = [{...}]``) is not found, and the message then names no line.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_-]+)\s*\]\]?")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str, int | None]] = []  # (line index, section, n-th)
        counts: dict[str, int] = {}
        for number, line in enumerate(self.lines):
            match = self._HEADER.match(line)
            if match:
                section = match.group(2)
                if match.group(1) == "[[":
                    nth = counts.get(section, 0)
                    counts[section] = nth + 1
                    self.headers.append((number, section, nth))
                else:
                    self.headers.append((number, section, None))

    def find(self, section: str | None, index: int | None, key: str | None) -> int | None:
        """The 1-based line of ``key`` in the table (or of the table's header, or None)."""
        if section is None:
            return None
        if section == _TOP and key is not None:
            # A table of that name, or a key above the first table.
            header = next((n for n, name, _ in self.headers if name == key), None)
            if header is not None:
                return header + 1
            first = self.headers[0][0] if self.headers else len(self.lines)
            return self._key_line(key, 0, first)
        start = end = None
        for position, (number, name, nth) in enumerate(self.headers):
            if name == section and (index is None or nth == index):
                start = number
                following = self.headers[position + 1 :]
                end = following[0][0] if following else len(self.lines)
                break
        if start is None or end is None:
            return None
        if key is not None:
            found = self._key_line(key, start + 1, end)
            if found is not None:
                return found
        return start + 1

    def _key_line(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start, end):
            if pattern.match(self.lines[number]):
                return number + 1
        return None


# ---------------------------------------------------------------------------------- dump


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as a TOML file that loads back to an equal scenario."""
    out = ["[scenario]", *_fields(scenario, SCENARIO_KEYS, skip=("nodes",))]
    plain = all(n == NodeDecl(n.name) for n in scenario.nodes)
    if plain:
        out.append(f"nodes = {_value(scenario.node_names, 'names')}")
    if scenario.params:
        out += ["", "[params]"]
        out += [f"{key} = {value}" for key, value in scenario.params]
    if not plain:
        for node in scenario.nodes:
            out += ["", "[[node]]", *_fields(node, NODE_KEYS)]
    for miner in scenario.miners:
        out += ["", "[[miner]]", *_fields(miner, MINER_KEYS, skip=("strategy",))]
        if not isinstance(miner.strategy, Honest):
            out.append(f"strategy = {_value(miner.strategy.kind, 'text')}")
            out += _fields(miner.strategy, STRATEGY_KEYS[miner.strategy.kind])
    for link in scenario.links:
        out += ["", "[[link]]", *_fields(link, LINK_KEYS, skip=("between",))]
    for step in scenario.steps:
        out += ["", "[[step]]", f"do = {_value(step.kind, 'text')}"]
        out += _fields(step, STEP_KEYS[step.kind])
    return "\n".join(out) + "\n"


def _fields(obj: Any, kinds: Mapping[str, Kind], skip: tuple[str, ...] = ()) -> list[str]:
    """``key = value`` lines for the fields of ``obj`` that differ from their defaults
    (required fields are always written)."""
    defaults = {
        f.name: f.default for f in dataclasses.fields(obj) if f.default is not dataclasses.MISSING
    }
    lines = []
    for key, kind in kinds.items():
        attribute = _ATTRIBUTE.get(key, key)
        if key in skip or not hasattr(obj, attribute):
            continue
        value = getattr(obj, attribute)
        if attribute in defaults and value == defaults[attribute]:
            continue
        lines.append(f"{key} = {_value(value, kind)}")
    return lines


def _value(value: Any, kind: Kind) -> str:
    kind = kind.rstrip("?")
    if kind == "text":
        return _string(value)
    if kind == "condition":
        return _string(str(value))
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return repr(float(value))
    if kind == "coins":
        return _string(format_coins(value))
    if kind == "names":
        return "[" + ", ".join(_string(v) for v in value) + "]"
    if kind == "groups":
        return "[" + ", ".join(_value(g, "names") for g in value) + "]"
    raise ValueError(f"no writer for {kind}")


def _string(text: str) -> str:
    """A TOML string: multi-line for text with line breaks, else a basic string (JSON's
    escapes are TOML's)."""
    if "\n" in text and not any(c < " " and c not in "\n\t" for c in text):
        body = text.replace("\\", "\\\\").replace('"""', '""\\"')
        return '"""\n' + body + ('\\\n"""' if not body.endswith("\n") else '"""')
    return json.dumps(text, ensure_ascii=False)
