"""``forklab scenario`` and ``forklab fuzz``: what a user types and what comes back.

* ``scenario list`` names every built-in, says which run on real nodes, and ``--json`` gives
  the explanations the dashboard shows; ``scenario show`` prints a built-in's file;
* ``scenario run`` prints the report (``--json``: the report object), exits 0 when every assert
  held and 1 when one did not; ``--seed`` changes the run; ``--report-dir`` writes the report
  as text, JSON and SVG, and the trace, whose digest is the run's;
* a bad file, or a name that is neither a file nor a built-in, is one line on stderr with the
  file's line, and exit status 1; so is ``--block-time`` without ``--real``;
* Ctrl-C during ``scenario run --real`` stops the run cleanly: the report (with the steps
  ``stopped``) is printed, the devnet is taken down, and the exit status is 130;
* ``fuzz`` prints a one-line summary and exits 0 when every invariant held; a bad ``--nodes``
  is refused by argparse before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node import cli
from node.commands import lab
from node.lab.scenario_toml import parse_scenario
from node.lab.scenarios import builtin, names
from node.lab.trace import Trace
from tests.test_lab_runner_stop import LONG_WAIT


def forklab(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="forklab")
    lab.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


def test_list_names_every_built_in_and_whether_it_runs_on_real_nodes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert forklab(["scenario", "list"]) == 0
    text = capsys.readouterr().out
    for name in names():
        assert name in text
    assert forklab(["scenario", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["scenarios"]
    assert [s["name"] for s in listed] == list(names())
    by_name = {s["name"]: s for s in listed}
    assert by_name["fork-and-converge"]["real"] is True
    assert by_name["double-spend"]["real"] is True
    assert by_name["monetary-policy"]["real"] is False
    assert all(s["title"] and s["explanation"] for s in listed)


def test_show_prints_a_built_ins_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert forklab(["scenario", "show", "geography"]) == 0
    assert parse_scenario(capsys.readouterr().out) == builtin("geography")


def test_run_prints_the_report_and_exits_by_the_asserts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert forklab(["scenario", "run", "fork-and-converge", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and data["seed"] == 1

    assert forklab(["scenario", "run", "concentration", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert forklab(["scenario", "run", "concentration", "--json", "--seed", "7"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert (first["seed"], other["seed"]) == (1, 7)
    assert other["trace_digest"] != first["trace_digest"]  # the miners' luck differs

    failing = tmp_path / "failing.toml"
    failing.write_text(
        '[scenario]\nname = "failing"\nnodes = ["a"]\n\n'
        '[[step]]\ndo = "assert"\nthat = "height >= 1"\n'
    )
    assert forklab(["scenario", "run", str(failing)]) == 1
    text = capsys.readouterr().out
    assert "scenario failing (simulator, seed 1): FAILED" in text
    assert "FAILED   assert height >= 1  [height = 0]" in text


def test_report_dir_holds_the_report_the_plot_and_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "report"
    assert (
        forklab(["scenario", "run", "fork-and-converge", "--json", "--report-dir", str(folder)])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in folder.iterdir()) == [
        "report.json",
        "report.txt",
        "trace.jsonl",
        "tree.svg",
    ]
    written = json.loads((folder / "report.json").read_text())
    assert {k: v for k, v in written.items() if k != "wall_seconds"} == {
        k: v for k, v in printed.items() if k != "wall_seconds"
    }
    assert (folder / "report.txt").read_text().startswith("scenario fork-and-converge")
    assert (folder / "tree.svg").read_text().startswith("<svg")
    assert Trace.load(folder / "trace.jsonl").digest == printed["trace_digest"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '[scenario]\nname = "x"\nnodes = ["a"]\n\n[[step]]\ndo = "kill"\nnode = "b"\n',
            "forklab scenario: error: {path}:7: step 1 (kill): there is no node 'b' (nodes: a)",
        ),
        ("[scenario\n", "forklab scenario: error: {path}:1: not valid TOML"),
    ],
)
def test_a_bad_file_is_one_line_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    assert cli.main(["scenario", "run", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(expected.format(path=path))


def test_a_name_that_is_neither_a_file_nor_a_built_in_lists_the_built_ins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["scenario", "run", "fork-and-diverge"]) == 1
    err = capsys.readouterr().err
    assert "'fork-and-diverge' is neither a scenario file nor a built-in" in err
    assert "fork-and-converge" in err
    assert cli.main(["scenario", "show", "nothing"]) == 1
    assert "no built-in scenario 'nothing'" in capsys.readouterr().err
    assert cli.main(["scenario", "run", "fork-and-converge", "--block-time", "1"]) == 1
    assert "--block-time paces real nodes: it goes with --real" in capsys.readouterr().err


def test_fuzz_prints_a_summary_and_refuses_bad_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert forklab(["fuzz", "--seed", "3", "--runs", "4", "--nodes", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fuzz: seeds 3 to 6, 3 nodes: 4 runs, 5 invariants each")
    assert "every invariant held in every run" in out
    with pytest.raises(SystemExit) as exited:
        forklab(["fuzz", "--nodes", "1"])
    assert exited.value.code == 2
    assert "2 to 16 nodes, not 1" in capsys.readouterr().err


def test_ctrl_c_stops_a_real_run_which_reports_and_exits_130(tmp_path: Path) -> None:
    path = tmp_path / "long-wait.toml"
    path.write_text(LONG_WAIT)
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the run's devnet goes there
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "scenario", "run", str(path), "--real", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        narrated: list[str] = []
        while not any(line.startswith("  step 2:") for line in narrated):
            line = process.stderr.readline()
            assert line, f"the run ended early: {narrated}"
            narrated.append(line)
        time.sleep(0.5)  # into step 3, ten hours of the scenario's time
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert time.monotonic() - started < 15
    data = json.loads(out)
    assert [s["status"] for s in data["steps"]] == ["ok", "ok", "stopped", "stopped"]
    assert "stopping the run" in err
    assert [p.name for p in tmp_path.iterdir()] == ["long-wait.toml"], "the devnet is gone"
