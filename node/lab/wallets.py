"""The wallets of a simulation: one per name, the same keys in every run, paying real coins.

A scenario names who pays and who is paid (``alice``, a miner's pool, a merchant); each name
is a deterministic :class:`~node.wallet.wallet.Wallet` made from the name alone, so the same
name has the same keys in every run, in every process, and its addresses can be written into
a scenario file. A miner's coinbases pay its wallet's change key.

A payment is built from the coins of a node's chain that its mempool does not already spend
(:meth:`SimWallets.payment` gives the query the node runs): the wallet keeps no state of its
own, so a wallet that pays through two nodes on two branches of a fork sees each branch's
coins, and a double spend is two payments through two nodes.

What this module does not do: submit anything or record it (the simulation does), or hold
coins (the nodes' chains do).
"""

from __future__ import annotations

from collections.abc import Callable

from node.chainstate import ChainState
from node.core.address import decode_address, encode_address
from node.core.errors import AddressError
from node.core.mempool import Mempool
from node.core.params import NetworkParams
from node.core.tx import Transaction
from node.wallet.wallet import Wallet

Payment = Callable[[ChainState, Mempool], Transaction]
"""A query a node runs on its chain and mempool, returning the signed transaction."""


class SimWallets:
    """The simulation's wallets, made on first use from their names."""

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
        self._wallets: dict[str, Wallet] = {}

    def wallet(self, name: str) -> Wallet:
        """The deterministic wallet called ``name``."""
        wallet = self._wallets.get(name)
        if wallet is None:
            wallet = self._wallets[name] = Wallet.from_seed(
                self.params, f"forklab-lab/{name}".encode()
            )
        return wallet

    def address(self, name: str) -> str:
        return self.wallet(name).addresses()[0]

    def pubkey_hash(self, recipient: str) -> bytes:
        """The public-key hash of an address of this network, or else of the wallet so named."""
        try:
            return decode_address(recipient, self.params.address_version)
        except AddressError:
            return self.wallet(recipient).change_pubkey_hash

    def payment(self, sender: str, recipient: str, amount: int, *, fee_rate: int) -> Payment:
        """The query that makes ``sender`` pay ``amount`` to ``recipient`` (a name or address).

        It spends coins of the node's chain that the node's mempool does not already spend;
        WalletError if they are not enough.
        """
        wallet = self.wallet(sender)
        address = encode_address(self.pubkey_hash(recipient), self.params.address_version)

        def build(chain: ChainState, mempool: Mempool) -> Transaction:
            coins = chain.coins_for(wallet.pubkey_hashes)
            spent = {op for op, _ in coins if mempool.spender_of(op) is not None}
            return wallet.pay(
                coins,
                chain.height + 1,
                address=address,
                amount=amount,
                fee_rate=fee_rate,
                spent=spent,
            ).tx

        return build
