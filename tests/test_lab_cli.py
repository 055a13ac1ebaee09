"""``forklab experiment``: what a user types and what comes back.

* ``--json`` prints one object with the keys the issue names (``revenue_share``,
  ``stale_rate``) beside the formula's value and the trace digest; the same seed gives the same
  digest;
* the text output puts the measurement beside the formula with its standard error;
* a bad value is refused by argparse with one sentence and exit status 2, before anything runs.

The command is registered by :func:`node.commands.lab.register`; these tests build a parser
with it, as ``forklab``'s own parser does.
"""

from __future__ import annotations

import argparse
import json

import pytest

from node.commands import lab


def forklab(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="forklab")
    lab.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


SELFISH = ["experiment", "selfish-mining", "--alpha", "0.3", "--gamma", "0.5", "--blocks", "200"]
STALE = ["experiment", "stale-rate", "--delay", "6", "--interval", "60", "--blocks", "200"]


def test_json_output_has_the_measurement_the_formula_and_the_digest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert forklab([*SELFISH, "--seed", "4", "--interval", "60", "--json"]) == 0
    selfish = json.loads(capsys.readouterr().out)
    assert selfish["experiment"] == "selfish-mining"
    assert 0 < selfish["revenue_share"] < 1
    assert selfish["analytic"] == pytest.approx(0.32687, abs=1e-5)
    assert selfish["blocks"] == 200 and selfish["seed"] == 4

    assert forklab([*STALE, "--seed", "4", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert forklab([*STALE, "--seed", "4", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert first["stale_rate"] == again["stale_rate"]
    assert first["trace_digest"] == again["trace_digest"]
    assert first["analytic"] == pytest.approx(0.09516, abs=1e-5)
    assert {"stale_fraction", "stale_fraction_analytic", "stale_rate_error"} <= set(first)


def test_text_output_puts_measurement_beside_formula(capsys: pytest.CaptureFixture[str]) -> None:
    assert forklab([*SELFISH, "--interval", "60"]) == 0
    text = capsys.readouterr().out
    assert "Eyal and Sirer" in text and "0.3269" in text and "standard errors" in text
    assert "trace " in text

    assert forklab(STALE) == 0
    text = capsys.readouterr().out
    assert "1 - e^(-delay/interval)      0.0952" in text
    assert "delay / (delay + interval)   0.0909" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["experiment", "selfish-mining", "--alpha", "0.6", "--gamma", "0"], "below 0.5"),
        (["experiment", "selfish-mining", "--alpha", "0.3", "--gamma", "2"], "from 0 to 1"),
        (["experiment", "selfish-mining", "--alpha", "x", "--gamma", "0"], "a number"),
        ([*STALE[:2], "--delay", "-1"], "positive number of seconds"),
        ([*STALE[:4], "--blocks", "5"], "at least 100 blocks"),
        ([*STALE[:4], "--interval", "nan"], "finite"),
        (["experiment", "selfish-mining", "--gamma", "0"], "--alpha"),
    ],
)
def test_a_bad_value_is_refused_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        forklab(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
