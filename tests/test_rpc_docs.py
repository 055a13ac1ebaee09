"""``docs/api.md`` lists everything the API offers: each check fails when something is added
to the code and not to the page (or the page promises something the code does not have)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from node.rpc.methods import build_registry
from node.rpc.metrics import Counters
from node.rpc.stream import EVENT_TYPES

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()


def test_every_method_is_documented_with_its_usage_line() -> None:
    for method in build_registry():
        assert f"`{method.usage}`" in DOCS, method.usage


def test_every_method_row_names_a_method() -> None:
    section = DOCS.split("### Methods", 1)[1].split("## REST", 1)[0]
    names = {m.name for m in build_registry()}
    rows = re.findall(r"^\| `([a-z]+)", section, flags=re.MULTILINE)
    assert rows
    assert set(rows) <= names


def test_every_event_type_is_documented() -> None:
    for name in [*EVENT_TYPES, "hello", "events_lost"]:
        assert f"| `{name}` |" in DOCS, name


def test_every_counter_is_documented() -> None:
    for family in Counters().families():
        assert f"`{family.name}" in DOCS, family.name


def test_every_rest_route_is_documented() -> None:
    from node.rpc.rest import add_rest_routes

    app = web.Application()
    add_rest_routes(app, None, None, None, cors=False)  # type: ignore[arg-type]
    for resource in app.router.resources():
        path = resource.canonical
        shown = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), path)
        shown = shown.replace("ADDRESS", "ADDR")
        assert f"`{shown}" in DOCS, shown
