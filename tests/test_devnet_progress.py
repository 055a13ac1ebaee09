"""Progress on stderr: one line redrawn in place on a terminal, one summary line elsewhere.

* away from a terminal a step prints nothing while it runs and its summary once, with the time;
* on a terminal it redraws a spinner, a bar and the detail, and ends with a check mark;
* a step left by an error clears its line and prints no summary (the error says enough).
"""

from __future__ import annotations

import io
import re

import pytest

from node.devnet.progress import Progress


def test_away_from_a_terminal_a_step_prints_its_summary_once() -> None:
    out = io.StringIO()
    progress = Progress(out, interactive=False)
    with progress.step("syncing", 3) as step:
        for n in range(1, 4):
            step.update(n, f"n{n}")
        step.done("3 nodes on one tip")
    with progress.step("funding"):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"3 nodes on one tip \(\d+\.\d s\)", lines[0])
    assert re.fullmatch(r"funding: done \(\d+\.\d s\)", lines[1])


def test_on_a_terminal_a_step_is_redrawn_in_place() -> None:
    out = io.StringIO()
    with Progress(out, interactive=True, redraw_every=0).step("starting nodes", 4) as step:
        step.update(2, "n2")
        step.update(3, "n3")
        step.done("started n1, n2, n3, n4")
    text = out.getvalue()
    assert "\n" not in text.rstrip("\n")  # one line, redrawn with \r
    assert "starting nodes [" + "#" * 12 + "." * 12 + "] 2/4 n2" in text
    assert "starting nodes [" + "#" * 18 + "." * 6 + "] 3/4 n3" in text
    assert re.search(r"\r\x1b\[2K✔ started n1, n2, n3, n4 \(\d+\.\d s\)\n$", text)


def test_redraws_are_spaced_out() -> None:
    out = io.StringIO()
    with Progress(out, interactive=True, redraw_every=3600).step("syncing", 100) as step:
        for n in range(100):
            step.update(n)
    assert out.getvalue().count("\r") == 2  # the first draw and the final line


def test_a_failed_step_clears_its_line_and_says_nothing() -> None:
    for interactive, expected in ((True, "\r\x1b[2K"), (False, "")):
        out = io.StringIO()
        with pytest.raises(RuntimeError), Progress(out, interactive=interactive).step("x", 2):
            raise RuntimeError("boom")
        assert out.getvalue().endswith(expected)
        assert "done" not in out.getvalue()
