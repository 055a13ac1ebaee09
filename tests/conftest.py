"""Fixtures shared by the mempool and block template tests: a regtest chain with spendable coins.

``chain`` is 110 blocks long, so the coinbases of ``b1`` to ``b10`` are mature for a transaction
in block 111 (regtest coinbases mature after 100 blocks). It is built once per test module;
``view`` is a fresh overlay of its UTXO set for every test, so no test sees another's changes.

A test module that needs a different chain or pool defines a fixture of the same name, which
takes precedence over these.
"""

from __future__ import annotations

import pytest
from blocktools import ChainBuilder

from node.core.mempool import Mempool
from node.core.params import REGTEST
from node.core.utxo import CoinsCache


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    chain = ChainBuilder()
    chain.extend(110)
    return chain


@pytest.fixture(scope="module")
def base_view(chain: ChainBuilder) -> CoinsCache:
    """The UTXO set at ``b110``, built once per module; tests read it through ``view``."""
    return chain.connect_branch("b110")


@pytest.fixture
def view(base_view: CoinsCache) -> CoinsCache:
    return CoinsCache(base_view)


@pytest.fixture
def pool() -> Mempool:
    return Mempool(REGTEST)
