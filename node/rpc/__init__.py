"""The node's API: JSON-RPC as bitcoind speaks it, read-only REST, an event stream, metrics.

Modules, from the wire inwards:

- :mod:`node.rpc.server`: the aiohttp application and its routes, authentication of each.
- :mod:`node.rpc.jsonrpc`: JSON-RPC 1.0/2.0 request and reply handling, batches, HTTP status.
- :mod:`node.rpc.registry`: typed method declarations and parameter binding.
- :mod:`node.rpc.methods`: the methods, one module per area as in bitcoind.
- :mod:`node.rpc.rest`, :mod:`node.rpc.stream`, :mod:`node.rpc.metrics`: REST routes, the
  ``/events`` WebSocket, Prometheus text.
- :mod:`node.rpc.views`: the JSON shapes of blocks, headers and transactions.
- :mod:`node.rpc.work`: templates, getwork's format and the in-process nonce search.
- :mod:`node.rpc.wallet_service`: the process's wallet over the node.
- :mod:`node.rpc.auth`, :mod:`node.rpc.client`: the cookie, basic auth, a blocking client.
- :mod:`node.rpc.errors`, :mod:`node.rpc.jsonfmt`: error codes; JSON with exact amounts.

The API drives :class:`node.node.Node` through its public methods only; it holds no chain
state of its own. What it deliberately does not do: validate anything itself, serve HTTPS (put
a TLS proxy in front to expose a node beyond localhost), or keep a transaction index.

Everything the docs promise about it is tabulated in ``docs/api.md``.
"""

from node.rpc.client import RpcCallError, RpcClient, RpcConnectionError
from node.rpc.errors import RpcCode, RpcError

__all__ = ["RpcCallError", "RpcClient", "RpcCode", "RpcConnectionError", "RpcError"]
