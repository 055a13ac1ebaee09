"""Network presets: the constants that make ``regtest``, ``demo`` and ``main`` different chains.

==========  =====================  ==================  =============  ===============
preset      target spacing         retarget            halving every  maturity
==========  =====================  ==================  =============  ===============
regtest     (mined on demand)      none, 0x207fffff    150 blocks     100 blocks
demo        5 s                    every 12 blocks     210 blocks     10 blocks
main        600 s                  every 2016 blocks   210,000        100 blocks
==========  =====================  ==================  =============  ===============

``regtest`` takes Bitcoin regtest's constants where they exist, so a block is one or two hashes
away and local tests are instant. ``demo`` is for classrooms: a block every few seconds, with
retargeting so the pace holds whatever hardware joins. ``main`` takes Bitcoin's constants.

Each network has its own genesis block, whose hash is also the network's identity: peers of
another network are refused at the handshake and signatures commit to it (no replay). The genesis
nonces below were found once, offline, and are checked by the tests; nothing is mined at import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property

from node.core.block import MAX_BLOCK_SIZE, Block
from node.core.header import BlockHeader, bits_to_target, target_to_bits
from node.core.tx import COIN, TxOut, make_coinbase

MEDIAN_TIME_SPAN = 11
"""A block's time must exceed the median time of this many previous blocks."""

MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
"""A block's time may be at most this far ahead of the validating node's clock."""

MAX_HALVINGS = 64
"""After this many halvings a right shift of a 64-bit subsidy is zero anyway; stop there."""


class Network(enum.Enum):
    REGTEST = "regtest"
    DEMO = "demo"
    MAIN = "main"


@dataclass(frozen=True)
class NetworkParams:
    network: Network
    pow_limit_bits: int
    """The easiest target allowed, in compact form; also the genesis target."""
    target_spacing: int
    """Seconds the network aims for between blocks."""
    retarget_interval: int
    """Blocks between difficulty adjustments; 0 disables retargeting (regtest)."""
    retarget_clamp: int
    """An adjustment changes the target by at most this factor either way (Bitcoin: 4)."""
    halving_interval: int
    initial_subsidy: int
    coinbase_maturity: int
    """A coinbase output may be spent this many blocks after its own, not before."""
    max_block_size: int
    address_version: int
    """Base58Check version byte: main 0x00 ("1..."), regtest 0x6f ("m"/"n"), demo 0x1e ("D")."""
    default_p2p_port: int
    default_rpc_port: int
    genesis_time: int
    genesis_bits: int
    genesis_nonce: int
    genesis_message: bytes

    @property
    def name(self) -> str:
        return self.network.value

    @cached_property
    def pow_limit(self) -> int:
        return bits_to_target(self.pow_limit_bits)

    @cached_property
    def genesis(self) -> Block:
        """The genesis block. Its coinbase output, as in Bitcoin, is never spendable."""
        coinbase = make_coinbase(
            0, (TxOut(self.initial_subsidy, bytes(20)),), message=self.genesis_message
        )
        header = BlockHeader(
            version=1,
            prev_hash=bytes(32),
            merkle_root=coinbase.txid,
            time=self.genesis_time,
            bits=self.genesis_bits,
            nonce=self.genesis_nonce,
        )
        return Block(header, (coinbase,))

    @property
    def genesis_hash(self) -> bytes:
        return self.genesis.hash

    @property
    def target_timespan(self) -> int:
        return self.target_spacing * self.retarget_interval

    def subsidy(self, height: int) -> int:
        """New coins a block at ``height`` may create: halved every ``halving_interval``."""
        halvings = height // self.halving_interval
        if halvings >= MAX_HALVINGS:
            return 0
        return self.initial_subsidy >> halvings

    def supply_at(self, height: int) -> int:
        """Coins issued by blocks 1..height if each claimed its full subsidy.

        Computed per era, not per block, so it is cheap even for ``main`` heights.
        """
        total = 0
        era_start = 1
        while era_start <= height:
            era = era_start // self.halving_interval
            era_end = min(height, (era + 1) * self.halving_interval - 1)
            total += (era_end - era_start + 1) * self.subsidy(era_start)
            era_start = era_end + 1
            if self.subsidy(era_start) == 0:
                break
        return total

    @cached_property
    def supply_cap(self) -> int:
        """The hard cap: every subsidy the schedule will ever pay.

        The genesis output is not counted: as in Bitcoin, it can never be spent.
        """
        return self.supply_at(self.halving_interval * MAX_HALVINGS)

    def next_bits(self, height: int, parent_bits: int, first_time: int, last_time: int) -> int:
        """The ``bits`` a block at ``height`` must carry (Bitcoin's retarget rule).

        ``first_time`` and ``last_time`` are the times of the first and last blocks of the
        period that just ended, i.e. of blocks ``height - interval`` and ``height - 1`` (Bitcoin's
        well-known off-by-one, kept for compatibility). Outside a retarget height they are unused.
        """
        if self.retarget_interval == 0 or height % self.retarget_interval != 0:
            return parent_bits
        timespan = last_time - first_time
        low = self.target_timespan // self.retarget_clamp
        high = self.target_timespan * self.retarget_clamp
        timespan = max(low, min(high, timespan))
        target = bits_to_target(parent_bits) * timespan // self.target_timespan
        return target_to_bits(min(target, self.pow_limit))


REGTEST = NetworkParams(
    network=Network.REGTEST,
    pow_limit_bits=0x207FFFFF,
    target_spacing=600,
    retarget_interval=0,
    retarget_clamp=4,
    halving_interval=150,
    initial_subsidy=50 * COIN,
    coinbase_maturity=100,
    max_block_size=MAX_BLOCK_SIZE,
    address_version=0x6F,
    default_p2p_port=18444,
    default_rpc_port=18443,
    genesis_time=1795564800,
    genesis_bits=0x207FFFFF,
    genesis_nonce=3,
    genesis_message=b"forklab regtest: blocks on demand",
)

DEMO = NetworkParams(
    network=Network.DEMO,
    pow_limit_bits=0x207FFFFF,
    target_spacing=5,
    retarget_interval=12,
    retarget_clamp=4,
    halving_interval=210,
    initial_subsidy=50 * COIN,
    coinbase_maturity=10,
    max_block_size=MAX_BLOCK_SIZE,
    address_version=0x1E,
    default_p2p_port=28444,
    default_rpc_port=28443,
    genesis_time=1795564800,
    genesis_bits=0x1F00FFFF,
    genesis_nonce=40693,
    genesis_message=b"forklab demo: a block every few seconds, for classrooms",
)

MAIN = NetworkParams(
    network=Network.MAIN,
    pow_limit_bits=0x1D00FFFF,
    target_spacing=600,
    retarget_interval=2016,
    retarget_clamp=4,
    halving_interval=210_000,
    initial_subsidy=50 * COIN,
    coinbase_maturity=100,
    max_block_size=MAX_BLOCK_SIZE,
    address_version=0x00,
    default_p2p_port=8444,
    default_rpc_port=8443,
    genesis_time=1795564800,
    genesis_bits=0x1D00FFFF,
    genesis_nonce=2568346544,
    genesis_message=b"forklab main 2026-11-25: Bitcoin's constants, your own chain",
)

PRESETS: dict[str, NetworkParams] = {p.name: p for p in (REGTEST, DEMO, MAIN)}


def params_for(name: str) -> NetworkParams:
    """The preset called ``name``; a clear ValueError listing the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown network {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None
