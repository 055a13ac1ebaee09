"""The dashboard: a web page that shows a network of nodes live, and acts on it.

An educator opens it in a browser and the class watches blocks spread from node to node,
branches appear and resolve, partitions cut links and heal, and can act with the buttons (each
shows the terminal command that does the same). It is served by one small aiohttp application
that watches every node through its public API (REST and the ``/events`` WebSocket), so it
works with a devnet or with nodes started by hand. The page is plain HTML, CSS and JavaScript
modules with SVG, shipped in this package: no CDN, no build step, it works offline.

Modules, from the bottom up:

===============  ============================================================================
module           what it holds
===============  ============================================================================
tree             the block tree across all nodes: main, competing and stale blocks, lanes,
                 history collapsed beyond a bound, a block's spread hop by hop (pure)
nodes            the nodes watched, and an asynchronous client for each one's API
sources          where the node list comes from: a devnet's state file, or a fixed list
monitor          one live picture: every node's events merged, its status polled
snapshot         the tree and the chain's money supply as the page is sent them
actions          the buttons: actions parsed and checked, carried out through the nodes' RPC
devnet_control   ...or through the devnet, showing the ``forklab devnet`` command
guard            which requests may act (JSON, same origin, loopback host)
lesson_story     a lesson's narration and summary in plain words (pure)
lesson_devnet    a real lesson's own devnet: where, stopping its runner, pausing the
                 watched devnet's miners
lesson_runs      running a lesson: one at a time, on a devnet of its own or in the
                 simulator, stoppable, nothing left behind
lessons          the lessons: the fork lab's built-in scenarios, their parameters, routes
money            the money panel: an address's coins followed forward, by a running node
app              the aiohttp application: the page, its state, its stream, its actions
server           binding an address, the ready line, a clean stop
static/          the page: ``index.html``, ``style.css``, ``js/*.js`` (ES modules)
===============  ============================================================================

What this package does not do: decide anything about consensus (the nodes do; the dashboard
only draws what they report), or start the networks it watches (``forklab devnet up`` does; a
lesson's own devnet is made by the fork lab's real runner, and taken down with the lesson).
"""

from node.dashboard.app import DashboardSettings, build_app
from node.dashboard.nodes import NodeEndpoint
from node.dashboard.server import (
    DEFAULT_PORT,
    DashboardError,
    DashboardServer,
    serve_dashboard,
)
from node.dashboard.sources import DevnetSource, StaticSource

__all__ = [
    "DEFAULT_PORT",
    "DashboardError",
    "DashboardServer",
    "DashboardSettings",
    "DevnetSource",
    "NodeEndpoint",
    "StaticSource",
    "build_app",
    "serve_dashboard",
]
