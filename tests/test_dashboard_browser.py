"""The dashboard in a real headless Chromium, against a real devnet: what the class sees.

A devnet of four nodes in a ring (its two miners stopped: blocks come when the page asks) is
watched by a dashboard, and the page is driven as a teacher would drive it, through its buttons:

1. it loads and shows every node with its hash power, the block tree (the funding blocks,
   older history collapsed), the network ring and the money supply, with the devnet command of
   each action;
2. "Mine" on one node: the block appears on every node's tip within seconds, the spread is
   animated hop by hop and the command is logged; "Pay" puts a payment in every mempool until
   a block confirms it;
3. fork and converge: "Partition" cuts two links of the ring, both sides mine their own branch,
   "Heal" reconnects them, the shorter branch turns stale and the reorganisation is announced;
4. "Kill" shows a node down, "Restart" brings it back in step;
5. after hundreds more blocks the tree still draws only the chosen history, the rest counted.

Screenshots of each step go to ``test-artifacts/dashboard/``; no step may leave a JavaScript
error in the console.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browser import Browser, Page
from rpc_harness import REPO

from node.dashboard import DashboardServer
from node.dashboard.sources import DevnetSource
from node.devnet import Devnet, UpOptions

pytestmark = pytest.mark.asyncio(loop_scope="module")

ARTIFACTS = REPO / "test-artifacts" / "dashboard"
REACT = 5.0
"""Seconds the page may take to show what happened: "within seconds"."""
MEMPOOLS = "[...document.querySelectorAll('#nodes tbody tr')].map(r => r.cells[5].textContent)"
"""The mempool column of the nodes table, as shown."""
FUNDING = 103
"""Blocks a regtest devnet mines at start: three wallets and 100 for coinbase maturity."""


@dataclass
class Scene:
    devnet: Devnet
    page: Page
    url: str

    async def shot(self, name: str) -> Path:
        """A screenshot once blocks and flags have moved into place (transitions take a moment;
        flashes and packets may still be playing: they are part of the picture)."""
        await self.page.wait_for(
            "document.getAnimations()"
            ".every(a => !(a instanceof CSSTransition) || a.playState !== 'running')",
            timeout=REACT,
        )
        return await self.page.screenshot(ARTIFACTS / f"{name}.png")

    async def act(self, action: str, **values: Any) -> None:
        """Fill the action's form as a user would, then press its button."""
        await self.page.wait_for(
            f"!document.querySelector('form[data-action={action}] button[type=submit]').disabled"
        )
        await self.page.evaluate(
            f"""(() => {{
                const form = document.querySelector('form[data-action={action}]');
                const values = {json.dumps(values)};
                for (const [name, value] of Object.entries(values)) {{
                    if (name === 'side') {{
                        for (const box of form.elements.side) {{
                            box.checked = value.includes(box.value);
                        }}
                    }} else {{
                        form.elements[name].value = value;
                    }}
                }}
                form.dispatchEvent(new Event('input', {{ bubbles: true }}));
                form.querySelector('button[type=submit]').click();
            }})()"""
        )

    async def tips(self) -> dict[str, str]:
        """Node -> the block its tip flag sits on, as drawn."""
        flags = await self.page.evaluate(
            "[...document.querySelectorAll('#tree .tip')].map(f => [f.dataset.node, f.dataset.tip])"
        )
        return dict(flags)

    def no_errors(self) -> None:
        assert self.page.errors == [], self.page.errors


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    base = tmp_path_factory.mktemp("dashboard-browser")
    devnet = Devnet(base / "devnet")
    # Two miners hold 70% and 30% of the hash power, as the page must show; they are stopped
    # at once (a day between blocks leaves them no time to find one) so blocks come only when
    # the page asks.
    options = UpOptions(
        nodes=4, miner_shares=(0.7, 0.3), block_time=86_400, topology="ring", base_port=0
    )
    await asyncio.to_thread(devnet.up, options)
    for miner in ("m1", "m2"):
        await asyncio.to_thread(devnet.kill, miner)
    server = DashboardServer(DevnetSource(devnet.root))
    try:
        url = await server.start("127.0.0.1", 0)
        async with Browser.launch(base / "chromium") as browser:
            page = await browser.new_page(url)
            yield Scene(devnet, page, url)
    finally:
        await server.stop()
        await asyncio.to_thread(devnet.down, wipe=True)


async def test_the_page_shows_every_node_the_block_tree_and_the_network(scene: Scene) -> None:
    page = scene.page
    await page.wait_for("document.querySelectorAll('#nodes tbody tr:not(.down)').length === 4")
    rows = await page.evaluate(
        "[...document.querySelectorAll('#nodes tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [r[0] for r in rows] == ["n1", "n2", "n3", "n4"]
    assert all(r[1] == "up" and r[2] == str(FUNDING) for r in rows), rows
    assert all(r[4] == "2" for r in rows), "a ring: two peers each"
    assert [r[6] for r in rows] == ["70%", "30%", "0%", "0%"], "m1 mines on n1, m2 on n2"
    # The tree: the last 40 heights drawn, the rest collapsed, every tip on the best block.
    await page.wait_for("document.querySelectorAll('#tree .block').length === 40")
    heights = await page.evaluate(
        "[...document.querySelectorAll('#tree .block')].map(b => +b.dataset.height)"
    )
    assert sorted(heights) == list(range(FUNDING - 39, FUNDING + 1))
    collapsed = await page.evaluate("document.querySelector('#tree .collapsed').textContent")
    assert f"{FUNDING + 1 - 40} earlier" in collapsed
    best = await page.evaluate(
        f"document.querySelector('#tree .block[data-height=\"{FUNDING}\"]').dataset.hash"
    )
    assert await scene.tips() == {n: best for n in ("n1", "n2", "n3", "n4")}
    # The ring and the money supply.
    links = await page.evaluate(
        "[...document.querySelectorAll('#graph .link')].map(l => [l.dataset.link, l.dataset.state])"
    )
    assert sorted(links) == [["n1|n2", "up"], ["n1|n4", "up"], ["n2|n3", "up"], ["n3|n4", "up"]]
    supply = await page.evaluate("document.querySelector('#chain').textContent")
    assert "5,150 of 14,950 coins" in supply and "in 47 block(s)" in supply
    # Each control shows its devnet command.
    await page.wait_for("document.querySelector('form[data-action=partition] code').textContent")
    command = await page.evaluate(
        "document.querySelector('form[data-action=partition] code').textContent"
    )
    assert command == f"forklab devnet partition n1,n2 n3,n4 --dir {scene.devnet.root}"
    await scene.shot("01-loaded")
    scene.no_errors()


async def test_a_mined_block_reaches_every_tip_within_seconds_hop_by_hop(scene: Scene) -> None:
    page = scene.page
    started = time.monotonic()
    await scene.act("mine", node="n3", blocks=1)
    await page.wait_for(
        f"document.querySelectorAll('#tree .block[data-height=\"{FUNDING + 1}\"]').length === 1",
        timeout=REACT,
    )
    new = await page.evaluate(
        f"document.querySelector('#tree .block[data-height=\"{FUNDING + 1}\"]').dataset.hash"
    )
    deadline = started + REACT
    while set((await scene.tips()).values()) != {new}:
        assert time.monotonic() < deadline, await scene.tips()
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    assert took < REACT, took
    # The spread: n3 found it; its two neighbours got it from n3, n1 from one of them.
    await page.wait_for("document.querySelectorAll('#graph .hop-label').length >= 2")
    await page.wait_for(f"document.querySelector('#spread').dataset.hash === '{new}'")
    spread = await page.evaluate("document.querySelector('#spread').textContent")
    assert "appeared first at n3" in spread
    for hop in ("n2: +", "n4: +", "n1: +"):
        assert hop in spread, spread
    log = await page.evaluate("document.querySelector('#log').textContent")
    assert f"forklab devnet mine n3 1 --dir {scene.devnet.root}" in log
    await scene.shot("02-mined")
    scene.no_errors()


async def test_a_payment_waits_in_every_mempool_until_a_block_confirms_it(scene: Scene) -> None:
    page = scene.page
    await scene.act("send", **{"from": "alice", "to": "carol", "amount": "2.5"})
    await page.wait_for(
        f"{MEMPOOLS}.every(size => size === '1')",
        timeout=REACT,
    )
    log = await page.evaluate("document.querySelector('#log').textContent")
    assert "alice paid 2.5 to carol" in log and "received payment" in log
    assert f"forklab devnet send alice carol 2.5 --dir {scene.devnet.root}" in log
    await scene.shot("03-payment-waiting")
    await scene.act("mine", node="n2", blocks=1)
    await page.wait_for(
        f"{MEMPOOLS}.every(size => size === '0')",
        timeout=REACT,
    )
    txs = await page.evaluate("window.dashboard.state.tree.blocks.at(-1).txs")
    assert txs == 2, "the coinbase and the payment"
    scene.no_errors()


async def test_fork_and_converge_partition_both_sides_mine_heal_and_one_branch_goes_stale(
    scene: Scene,
) -> None:
    page = scene.page
    height = await page.evaluate("window.dashboard.state.tree.best_height")
    await scene.act("partition", side=["n1", "n2"])
    await page.wait_for(
        "document.querySelectorAll('#graph .link.cut').length === 2"
        " && document.querySelectorAll('#graph .scissors').length === 2",
        timeout=REACT,
    )
    cut = await page.evaluate(
        "[...document.querySelectorAll('#graph .link.cut')].map(l => l.dataset.link).sort()"
    )
    assert cut == ["n1|n4", "n2|n3"]
    await scene.shot("04-partitioned")
    # Different payees: two nodes mining on one parent in the same second to the same
    # wallet would find the very same block.
    await scene.act("mine", node="n1", blocks=1, to="alice")
    await scene.act("mine", node="n3", blocks=2, to="bob")
    # Each side on its own branch: n1 and n2 on n1's block, n3 and n4 two blocks higher.
    await page.wait_for(
        "(() => { const tip = (n) => document.querySelector(`#tree .tip[data-node=${n}]`)"
        ".dataset.tip; return tip('n1') === tip('n2') && tip('n3') === tip('n4')"
        " && tip('n1') !== tip('n3'); })()"
        " && document.querySelectorAll('#tree .block.fork').length === 1"
        f" && document.querySelectorAll('#tree .block[data-height=\"{height + 2}\"]').length === 1",
        timeout=REACT,
    )
    await scene.shot("05-two-branches")

    await scene.act("heal")
    await page.wait_for(
        "!document.querySelector('#reorg-banner').hidden"
        " && document.querySelectorAll('#tree .block.stale').length === 1"
        " && new Set([...document.querySelectorAll('#tree .tip')]"
        ".map(f => f.dataset.tip)).size === 1",
        timeout=REACT,
    )
    banner = await page.evaluate("document.querySelector('#reorg-banner').textContent")
    assert "reorganised: 1 block(s)" in banner
    stale = await page.evaluate("document.querySelector('#tree .block.stale').dataset.height")
    assert int(stale) == height + 1
    await page.wait_for(
        "[...document.querySelectorAll('#graph .link')].every(l => l.dataset.state === 'up')",
        timeout=REACT,
    )
    await scene.shot("06-healed")
    scene.no_errors()


async def test_a_killed_node_is_shown_down_and_comes_back_when_restarted(scene: Scene) -> None:
    page = scene.page
    await scene.act("kill", node="n4")
    await page.wait_for(
        "document.querySelector('#nodes tr[data-node=n4]').classList.contains('down')"
        " && document.querySelector('#graph .peer[data-node=n4]').classList.contains('down')",
        timeout=REACT,
    )
    await scene.shot("07-killed")
    await scene.act("restart", node="n4")
    await page.wait_for(
        "!document.querySelector('#nodes tr[data-node=n4]').classList.contains('down')",
        timeout=15,
    )
    log = await page.evaluate("document.querySelector('#log').textContent")
    assert f"forklab devnet kill n4 --dir {scene.devnet.root}" in log
    assert f"forklab devnet restart n4 --dir {scene.devnet.root}" in log
    scene.no_errors()


async def test_a_long_history_stays_readable_older_blocks_collapse(scene: Scene) -> None:
    page = scene.page
    height = await page.evaluate("window.dashboard.state.tree.best_height")
    await scene.act("mine", node="n2", blocks=300)
    await page.wait_for(
        f"window.dashboard.state.nodes.every(n => n.height === {height + 300})", timeout=15
    )
    await page.wait_for("document.querySelectorAll('#tree .block').length === 40")
    collapsed = await page.evaluate("document.querySelector('#tree .collapsed').textContent")
    assert f"{height + 300 + 1 - 40 + 1:,} earlier, 1 stale" in collapsed, collapsed
    # More history on demand: the page reconnects for 400 heights.
    await page.evaluate(
        "(() => { const s = document.getElementById('depth'); s.value = '400';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    await page.wait_for("document.querySelectorAll('#tree .block').length >= 400", timeout=REACT)
    width = await page.evaluate("document.getElementById('tree').width.baseVal.value")
    scrolled = await page.evaluate(
        "(() => { const s = document.getElementById('tree-scroll');"
        " return s.scrollLeft + s.clientWidth >= s.scrollWidth - 2; })()"
    )
    assert width > 400 * 50 and scrolled, "the newest blocks stay in view"
    await scene.shot("08-long-history")
    scene.no_errors()


async def test_a_lesson_runs_on_real_nodes_from_its_start_button_to_its_summary(
    scene: Scene,
) -> None:
    page = scene.page
    lesson = "#lessons article[data-lesson=fork-and-converge]"
    tab = ".lesson-tabs button[data-lesson=fork-and-converge]"
    await page.wait_for(f"!!document.querySelector('{tab}')")
    await page.click(tab)
    await page.wait_for(f"!!document.querySelector('{lesson}')")
    where = await page.evaluate(f"document.querySelector('{lesson} .where').textContent")
    assert "real nodes" in where
    await page.click(f"{lesson} button.start")
    # While it runs, the page shows the lesson's own devnet, and narrates it.
    await page.wait_for(
        "window.dashboard.state.lesson"
        " && window.dashboard.state.lesson.name === 'fork-and-converge'",
        timeout=15,
    )
    summary = await page.evaluate("document.getElementById('summary').textContent")
    assert "the lesson “Fork and converge” on its own devnet" in summary
    await page.wait_for(
        "[...document.querySelectorAll('.narration .event')]"
        ".some(li => li.textContent.includes('reorganised'))",
        timeout=30,
    )
    # At once (the lesson may end in a few seconds): the lesson's nodes, and its narration.
    await page.screenshot(ARTIFACTS / "09-lesson-running.png")
    await page.wait_for(
        "!!document.querySelector('.lesson-run[data-status=done] .lesson-summary .headlines li')",
        timeout=30,
    )
    checks = await page.evaluate(
        "[...document.querySelectorAll('.lesson-summary .checks li')]"
        ".map(li => [li.className, li.textContent])"
    )
    assert checks and all(cls == "ok" for cls, _ in checks), checks
    headlines = await page.evaluate(
        "document.querySelector('.lesson-summary .headlines').textContent"
    )
    assert "2 stale" in headlines and "the deepest 2 blocks" in headlines
    # Over: the page is back on the class's devnet, and its buttons act again.
    await page.wait_for(
        "!window.dashboard.state.lesson"
        f" && window.dashboard.state.devnet_dir === '{scene.devnet.root}'",
        timeout=REACT,
    )
    await page.evaluate("document.getElementById('lessons-panel').scrollIntoView()")
    await scene.shot("10-lesson-summary")
    assert not await page.evaluate("document.body.dataset.lessonDevnet")
    scene.no_errors()
