"""The RPC methods, one module per area as in bitcoind's ``src/rpc/``.

===============  ==========================================================================
module           methods
===============  ==========================================================================
blockchain       getblockchaininfo, getblockcount, getbestblockhash, getblockhash, getblock,
                 getblockheader, getchaintips, getdifficulty, gettxout, getmempoolinfo,
                 getrawmempool, invalidateblock, reconsiderblock
rawtransactions  getrawtransaction, decoderawtransaction, sendrawtransaction
network          getnetworkinfo, getpeerinfo, getconnectioncount, addnode, disconnectnode,
                 setnetworkactive
mining           getmininginfo, getnetworkhashps, getblocktemplate, submitblock, getwork,
                 generatetoaddress, getminingpolicy, setminingpolicy
wallet           getnewaddress, getbalance, getbalances, listunspent, sendtoaddress
control          help, uptime, stop; validateaddress (category util)
links            getlinkpolicy, setlinkpolicy (forklab's own: partitions and latency)
tracing          traceaddress (forklab's own: follow an address's coins forward)
===============  ==========================================================================

Each module collects its methods in a :class:`~node.rpc.registry.MethodTable`; importing the
package builds nothing else, and :func:`build_registry` merges the tables.
"""

from __future__ import annotations

from node.rpc.methods import (
    blockchain,
    control,
    links,
    mining,
    network,
    rawtransactions,
    tracing,
    wallet,
)
from node.rpc.registry import Registry


def build_registry() -> Registry:
    return Registry(
        [
            blockchain.table,
            control.table,
            control.util,
            links.table,
            mining.table,
            network.table,
            rawtransactions.table,
            tracing.table,
            wallet.table,
        ]
    )
