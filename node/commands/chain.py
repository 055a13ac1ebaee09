"""``forklab quickstart`` and ``forklab verify``: the chain on its own, without a network.

``quickstart`` is the README's first command: it grows a regtest chain in a data directory with
the real rules, store, mempool, wallet and miner backend, and prints each block as it is
connected, so a newcomer sees blocks, coinbases, a payment and its fee within seconds. Running it
again continues the same chain. Nothing listens on a socket.

``verify`` rebuilds a data directory's UTXO set from its stored blocks and compares it with the
stored one, the check to run after a crash or when a data directory looks suspicious.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from miner.backend import NONCE_SPACE, Backend
from miner.factory import BACKEND_KINDS, open_backend
from node.chainstate import ChainState, template_on_tip
from node.core.block import Block
from node.core.header import bits_to_target
from node.core.mempool import Mempool
from node.core.params import PRESETS, NetworkParams, params_for
from node.core.tx import COIN, OutPoint, format_amount
from node.wallet.wallet import Wallet

QUICKSTART_FEE_RATE = 2
"""Smallest units per byte the quickstart's payment offers: above the default relay minimum."""


def default_datadir(name: str) -> Path:
    """A per-user data directory (XDG), never one relative to wherever the command runs."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "forklab" / name


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quick = subparsers.add_parser(
        "quickstart",
        help="grow a local regtest chain: mine blocks, make a payment, print every block",
        description=(
            "Mine a local regtest chain with the real rules, store and miner, pay a coin from "
            "alice to bob, and print each block as it is connected. Run again to continue it."
        ),
    )
    quick.add_argument("--datadir", type=Path, default=None, help="data directory")
    quick.add_argument(
        "--blocks", type=int, default=None, help="blocks to mine (default: enough to mature)"
    )
    quick.add_argument("--backend", choices=BACKEND_KINDS, default="cpu", help="miner backend")
    quick.set_defaults(handler=run_quickstart)

    verify = subparsers.add_parser(
        "verify",
        help="rebuild a data directory's UTXO set from its blocks and compare",
    )
    verify.add_argument("--datadir", type=Path, required=True, help="data directory")
    verify.add_argument("--network", choices=sorted(PRESETS), default="regtest")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    with ChainState.open(args.datadir, params_for(args.network), create=False) as chain:
        report = chain.verify()
    print(report.summary())
    return 0 if report.ok else 2


def run_quickstart(args: argparse.Namespace) -> int:
    params = params_for("regtest")
    datadir: Path = args.datadir or default_datadir("quickstart")
    datadir.mkdir(parents=True, exist_ok=True)
    alice = Wallet.from_seed(params, b"alice")
    bob = Wallet.from_seed(params, b"bob")
    print(f"data directory: {datadir}")
    print(f"alice: {alice.addresses()[0]}\nbob:   {bob.addresses()[0]}\n")
    with ChainState.open(datadir, params) as chain, open_backend(args.backend) as backend:
        mempool = Mempool(params)
        # Enough blocks that alice's first coinbase matures, so the payment below can happen.
        blocks = args.blocks
        if blocks is None:
            blocks = max(3, params.coinbase_maturity + 1 - chain.height)
        print(f"mining {blocks} blocks on {backend.device}")
        print(f"{'height':>6}  {'block':<64}  {'txs':>3}  {'reward':>14}  time")
        for _ in range(blocks):
            _mine_one(chain, mempool, backend, params, alice)
        spendable = alice.balance(chain.coins_for(alice.pubkey_hashes), chain.height + 1)
        if spendable.spendable > COIN:
            _pay(chain, mempool, params, alice, bob)
            _mine_one(chain, mempool, backend, params, alice)
        else:
            print(
                f"\nno payment yet: a coinbase can be spent {params.coinbase_maturity} blocks "
                "after its own, and alice has no coin that old; mine more blocks\n"
            )
        for name, wallet in (("alice", alice), ("bob", bob)):
            coins = chain.coins_for(wallet.pubkey_hashes)
            balance = wallet.balance(coins, chain.height + 1)
            print(
                f"{name}: {format_amount(balance.spendable)} spendable, "
                f"{format_amount(balance.immature)} immature"
            )
        print(f"\nchain tip {chain.tip.hash_hex} at height {chain.height}; run again to extend it")
    return 0


def _mine_one(
    chain: ChainState, mempool: Mempool, backend: Backend, params: NetworkParams, payee: Wallet
) -> Block:
    template = template_on_tip(
        chain, mempool, payee.change_pubkey_hash, int(time.time()), b"forklab quickstart"
    )
    target = bits_to_target(template.bits)
    # A backend reports every nonce that meets the target; on regtest that is every other one,
    # so search only a few times the expected number of hashes, not the backend's full batch.
    expected_hashes = (1 << 256) // (target + 1)
    count = max(256, min(backend.preferred_count, 4 * expected_hashes, NONCE_SPACE))
    extranonce = 0
    while True:
        header = template.header_for(extranonce, template.cur_time, 0).serialize()
        found = backend.search(header, target, 0, count)
        if found:
            block = template.block_for(extranonce, template.cur_time, found[0].nonce)
            break
        extranonce += 1
    result = chain.process_block(block, int(time.time()))
    if result.reject is not None:
        raise result.reject
    mempool.remove_for_block(block)
    print(
        f"{chain.height:>6}  {block.hash_hex}  {len(block.transactions):>3}  "
        f"{format_amount(block.transactions[0].total_out()):>14}  "
        f"{time.strftime('%H:%M:%S', time.gmtime(block.header.time))}"
    )
    return block


def _pay(
    chain: ChainState, mempool: Mempool, params: NetworkParams, payer: Wallet, payee: Wallet
) -> None:
    payment = payer.pay(
        chain.coins_for(payer.pubkey_hashes),
        chain.height + 1,
        address=payee.addresses()[0],
        amount=COIN,
        fee_rate=QUICKSTART_FEE_RATE,
        spent=_Spent(mempool),
    )
    mempool.accept(payment.tx, chain, chain.height + 1, sig_cache=chain.sig_cache)
    print(
        f"\nalice pays bob {format_amount(payment.amount)} in {payment.tx.txid_hex} "
        f"(fee {format_amount(payment.fee)}); it waits in the mempool for the next block\n"
    )


class _Spent:
    """Outpoints already spent by transactions waiting in the mempool."""

    def __init__(self, mempool: Mempool) -> None:
        self._mempool = mempool

    def __contains__(self, outpoint: object) -> bool:
        return isinstance(outpoint, OutPoint) and self._mempool.spender_of(outpoint) is not None
