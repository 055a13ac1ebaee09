"""The dashboard's money panel against a real devnet: its API, then the graph in Chromium.

A devnet of two nodes, no miners, three funded wallets (alice, bob, carol), and a trail made
through the devnet's own commands::

    alice --60--> bob --55--> carol            (each payment confirmed by a block)

The API lists the wallets with their addresses and asks a node for the trace of a wallet named
or an address given; in the page, picking alice draws her trail left to right, each output
shaded by the part of it that is alice's, her own outputs outlined; a payment carol makes next
appears in the graph on its own (the page traces again when the mempool changes). No step may
leave a JavaScript error in the console; screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from browser import Browser, chromium_path
from rpc_harness import REPO

from node.core.params import REGTEST
from node.dashboard import DashboardServer
from node.dashboard.sources import DevnetSource
from node.devnet import Devnet, UpOptions
from node.devnet import wallets as devnet_wallets
from node.rpc.jsonfmt import loads

pytestmark = pytest.mark.asyncio(loop_scope="module")

ARTIFACTS = REPO / "test-artifacts" / "dashboard"
REACT = 10.0
POOL = devnet_wallets.address(REGTEST, "pool")
"""Where the blocks the test mines pay: nobody in the trail."""
DAVE = devnet_wallets.address(REGTEST, "dave")
"""Not a wallet of the devnet: paid by address."""


@dataclass
class Money:
    devnet: Devnet
    url: str
    to_bob: str
    to_carol: str

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as reply:
            return reply.status, loads(await reply.read())


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def money(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Money]:
    devnet = Devnet(tmp_path_factory.mktemp("dashboard-money") / "devnet")
    options = UpOptions(nodes=2, miners=0, base_port=0, dashboard=False)
    await asyncio.to_thread(devnet.up, options)
    server = DashboardServer(DevnetSource(devnet.root))
    try:
        to_bob = await asyncio.to_thread(devnet.send, "alice", "bob", "60")
        await asyncio.to_thread(devnet.mine, "n1", 1, POOL)
        to_carol = await asyncio.to_thread(devnet.send, "bob", "carol", "55")
        await asyncio.to_thread(devnet.mine, "n1", 1, POOL)
        url = await server.start("127.0.0.1", 0)
        yield Money(devnet, url, to_bob, to_carol)
    finally:
        await server.stop()
        await asyncio.to_thread(devnet.down, wipe=True)


async def test_the_wallets_are_listed_with_their_addresses(money: Money) -> None:
    status, reply = await money.get("/api/money")
    assert status == 200
    assert reply["network"] == "regtest"
    listed = {w["name"]: w["address"] for w in reply["wallets"]}
    for name in ("alice", "bob", "carol"):
        assert listed[name] == devnet_wallets.address(REGTEST, name)


async def test_a_wallet_or_an_address_is_traced_by_a_node(money: Money) -> None:
    status, by_name = await money.get("/api/money/bob")
    assert status == 200, by_name
    assert by_name["name"] == "bob" and by_name["node"] in ("n1", "n2")
    assert by_name["address"] == devnet_wallets.address(REGTEST, "bob")
    # Bob's own mined coins, then the payment from alice and his payment to carol.
    payments = [tx for tx in by_name["txs"] if not tx["coinbase"]]
    assert [tx["txid"] for tx in payments] == [money.to_bob, money.to_carol]
    paid = payments[1]["vout"][0]
    assert paid["address"] == devnet_wallets.address(REGTEST, "carol")
    assert paid["fraction"] == 1.0 and paid["traced"] == Decimal(55)
    # An address gives the same trace; it is named when it is a wallet's.
    status, by_address = await money.get(f"/api/money/{by_name['address']}?max_txs=2")
    assert status == 200 and by_address["name"] == "bob"
    assert by_address["truncated"] and by_address["txs"] == by_name["txs"][:2]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/api/money/nobody", "not an address of regtest or a wallet's name"),
        ("/api/money/1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "not an address of regtest"),
        ("/api/money/alice?max_txs=0", "max_txs must be from 1"),
        ("/api/money/alice?max_txs=lots", "max_txs must be a whole number"),
    ],
)
async def test_what_is_not_an_address_is_refused(money: Money, path: str, fragment: str) -> None:
    status, reply = await money.get(path)
    assert status == 400
    assert fragment in reply["error"]


@pytest.mark.skipif(chromium_path() is None, reason="needs Chromium (Debian's chromium)")
async def test_the_page_draws_the_trail_and_follows_new_payments(
    money: Money, tmp_path_factory: pytest.TempPathFactory
) -> None:
    graph = "#money-graph"
    async with Browser.launch(tmp_path_factory.mktemp("chromium")) as browser:
        page = await browser.new_page(money.url)
        await page.wait_for("document.querySelectorAll('#money-wallets option').length >= 4")
        await page.evaluate(
            "(() => { const pick = document.getElementById('money-wallets');"
            " pick.value = 'alice'; pick.dispatchEvent(new Event('change')); })()"
        )
        # Alice's spent coinbases (hop 0), her payment to bob (1), bob's to carol (2).
        await page.wait_for(
            f"document.querySelector('{graph} [data-txid=\"{money.to_carol}\"]') !== null",
            timeout=REACT,
        )
        drawn = await page.evaluate(
            f"[...document.querySelectorAll('{graph} .money-tx')].map(g => g.dataset.txid)"
        )
        assert money.to_bob in drawn and money.to_carol in drawn
        assert (
            await page.evaluate(f"document.querySelectorAll('{graph} .money-edges path').length")
            >= 2
        )
        # Alice's change is outlined as hers; carol's 55 is shaded as wholly alice's.
        assert await page.evaluate(f"document.querySelectorAll('{graph} .target').length") >= 1
        shade = await page.evaluate(
            f"document.querySelector('{graph} [data-txid=\"{money.to_carol}\"] .out')"
            ".style.getPropertyValue('--traced')"
        )
        assert float(shade) > 0.5
        # The unspent receipts are folded into one box, counted.
        assert "never passed on" in await page.evaluate(
            f"document.querySelector('{graph} .money-folded').textContent"
        )
        holders = await page.evaluate("document.querySelector('.money-holders').textContent")
        assert "carol" in holders and "bob" in holders
        await page.screenshot(ARTIFACTS / "money-trail.png")

        # Carol pays dave: the mempool changes, and the page traces again by itself.
        to_dave = await asyncio.to_thread(money.devnet.send, "carol", DAVE, "52")
        await page.wait_for(
            f"document.querySelector('{graph} [data-txid=\"{to_dave}\"]') !== null",
            timeout=REACT,
        )
        head = await page.evaluate(
            f"document.querySelector('{graph} [data-txid=\"{to_dave}\"] .head').textContent"
        )
        assert "mempool" in head
        await page.screenshot(ARTIFACTS / "money-mempool.png")
        assert page.errors == [], page.errors
