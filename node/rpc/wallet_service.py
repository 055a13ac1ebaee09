"""The node process's wallet: its key file in the data directory, and payments through the node.

:class:`~node.wallet.wallet.Wallet` knows keys and builds payments from coins it is handed; it
holds no coins and touches no file. This service gives it a home in a running node: the key
file ``wallet.json`` in the data directory (created at first start, mode 0600; encrypted files
are opened with ``FORKLAB_WALLET_PASSPHRASE``), and the coins of its keys read from the chain and
the mempool in one trip to the chain's owner.

Which coins count: every unspent output of the wallet's keys in the active chain, plus the
outputs of mempool transactions that pay them (so change can be spent before it confirms, as
the mempool accepts chains), minus the coins mempool transactions already spend.

Every wallet operation runs on the node's executor, the thread that owns the chain: the wallet
is mutated only there (``getnewaddress``), and reads of it never race with that. Payments are
built and submitted one at a time (an asyncio lock), so two concurrent sends never pick the same
coins.

What this module does not do: keep transaction history or labels, or encrypt a new file (create
one with a passphrase by other means, and the node opens it).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from node.chainstate import ChainState
from node.core.address import encode_address
from node.core.errors import WalletError
from node.core.mempool import MEMPOOL_HEIGHT, Mempool
from node.core.params import NetworkParams
from node.core.tx import OutPoint
from node.core.utxo import Coin
from node.node import Node
from node.wallet.keyfile import KeyFile
from node.wallet.payment import Balance, Payment, is_mature
from node.wallet.wallet import Wallet

WALLET_FILE = "wallet.json"
PASSPHRASE_ENV = "FORKLAB_WALLET_PASSPHRASE"


@dataclass(frozen=True)
class WalletCoin:
    """One coin of the wallet, as ``listunspent`` shows it."""

    outpoint: OutPoint
    coin: Coin
    address: str
    confirmations: int
    """0 for an output of a mempool transaction."""
    spendable: bool
    """Mature and not spent by a mempool transaction."""


class _MempoolSpends:
    """The outpoints mempool transactions spend, as a container (``outpoint in spends``)."""

    def __init__(self, mempool: Mempool) -> None:
        self._mempool = mempool

    def __contains__(self, outpoint: object) -> bool:
        return isinstance(outpoint, OutPoint) and self._mempool.spender_of(outpoint) is not None


class NodeWallet:
    def __init__(self, wallet: Wallet, keyfile: KeyFile) -> None:
        self.wallet = wallet
        self.keyfile = keyfile
        self._send_lock = asyncio.Lock()

    @classmethod
    def open(cls, datadir: Path, params: NetworkParams, passphrase: str | None) -> NodeWallet:
        """Open ``wallet.json`` in ``datadir``, creating a new random wallet if there is none.

        Blocking file I/O: call it before the event loop runs, or on the executor.
        """
        path = datadir / WALLET_FILE
        if path.exists():
            keyfile, wallet_secrets = KeyFile.open(path, passphrase=passphrase)
            return cls(Wallet.from_secrets(params, wallet_secrets), keyfile)
        wallet = Wallet.generate(params, secrets.token_bytes)
        keyfile = KeyFile.create(
            path, wallet.secrets, passphrase=passphrase, randbytes=secrets.token_bytes
        )
        return cls(wallet, keyfile)

    @property
    def mining_pubkey_hash(self) -> bytes:
        """The first key's hash: fixed for the wallet's life, so safe to read anywhere."""
        return self.wallet.change_pubkey_hash

    def _coins(self, chain: ChainState, mempool: Mempool) -> list[tuple[OutPoint, Coin]]:
        """The wallet's coins in the chain and in mempool outputs (on the chain's owner)."""
        mine = self.wallet.pubkey_hashes
        coins = chain.coins_for(mine)
        for entry in mempool.entries():
            for n, out in enumerate(entry.tx.outputs):
                if out.pubkey_hash in mine:
                    coins.append(
                        (
                            OutPoint(entry.txid, n),
                            Coin(out.value, out.pubkey_hash, MEMPOOL_HEIGHT, False),
                        )
                    )
        return coins

    async def new_address(self, node: Node) -> str:
        def work(_chain: ChainState, _mempool: Mempool) -> str:
            address = self.wallet.new_address()
            self.keyfile.save(self.wallet.secrets, randbytes=secrets.token_bytes)
            return address

        return await node.query(work)

    async def balance(self, node: Node) -> Balance:
        def work(chain: ChainState, mempool: Mempool) -> Balance:
            return self.wallet.balance(
                self._coins(chain, mempool), chain.height + 1, spent=_MempoolSpends(mempool)
            )

        return await node.query(work)

    async def unspent(self, node: Node) -> list[WalletCoin]:
        params = node.params

        def work(chain: ChainState, mempool: Mempool) -> list[WalletCoin]:
            next_height = chain.height + 1
            spends = _MempoolSpends(mempool)
            return list(_describe(self._coins(chain, mempool), next_height, params, spends))

        return await node.query(work)

    async def send(self, node: Node, address: str, amount: int, fee_rate: int | None) -> Payment:
        """Build, sign and submit a payment; AddressError, WalletError or RuleError if not."""
        rate = node.config.min_fee_rate if fee_rate is None else fee_rate

        def build(chain: ChainState, mempool: Mempool) -> Payment:
            return self.wallet.pay(
                self._coins(chain, mempool),
                chain.height + 1,
                address=address,
                amount=amount,
                fee_rate=rate,
                spent=_MempoolSpends(mempool),
            )

        async with self._send_lock:
            payment = await node.query(build)
            await node.submit_tx(payment.tx)
        return payment


def _describe(
    coins: list[tuple[OutPoint, Coin]],
    next_height: int,
    params: NetworkParams,
    spends: _MempoolSpends,
) -> Iterator[WalletCoin]:
    for outpoint, coin in sorted(coins, key=lambda c: (c[1].height, c[0].txid, c[0].index)):
        in_mempool = coin.height == MEMPOOL_HEIGHT
        yield WalletCoin(
            outpoint=outpoint,
            coin=coin,
            address=encode_address(coin.pubkey_hash, params.address_version),
            confirmations=0 if in_mempool else next_height - coin.height,
            spendable=is_mature(coin, next_height, params) and outpoint not in spends,
        )


def insufficient_funds(exc: WalletError) -> bool:
    """Whether a wallet error is a lack of funds (bitcoind's -6) rather than another fault."""
    return str(exc).startswith("insufficient funds")
