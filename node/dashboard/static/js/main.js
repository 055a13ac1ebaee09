// The page: one WebSocket to the dashboard server, and the views it feeds.
//
// The server sends whole "state" messages (at most a few a second) and each node "event" and
// "action" as it happens. State is drawn as it comes; events drive what a state cannot show:
// a block spreading hop by hop, reorganisation banners, and the narration in the log. If the
// connection drops, the page reconnects and the next state redraws everything.

import { Controls } from "./controls.js";
import { GraphView } from "./graph.js";
import { Log, renderChain, renderNodes, renderSpread } from "./panels.js";
import { TreeView } from "./tree.js";

const RECONNECT_MS = 1000;
const BANNER_MS = 8000;

const $ = (id) => document.getElementById(id);

const log = new Log($("log"));
const tree = new TreeView($("tree"), $("tree-scroll"));
const graph = new GraphView($("graph"));
const controls = new Controls($("controls"));
let socket = null;
let bannerTimer = null;
let firstState = true;

// The latest state is kept for tests and for curious visitors (window.dashboard.state).
window.dashboard = { state: null, events: 0 };

function drawState(state) {
  window.dashboard.state = state;
  const up = state.nodes.filter((n) => n.up).length;
  const where = state.lesson
    ? ` · the lesson “${state.lesson.title}” on its own devnet`
    : state.devnet_dir ? ` · devnet ${state.devnet_dir}` : "";
  $("summary").textContent =
    `${state.network || "?"} · ${up} of ${state.nodes.length} nodes up · best height ${state.tree.best_height}${where}` +
    (state.source_error ? ` · ${state.source_error}` : "");
  tree.render(state.tree, state.nodes);
  graph.render(state.nodes, state.links);
  renderNodes($("nodes").tBodies[0], state.nodes);
  renderChain($("chain"), state.chain);
  renderSpread($("spread"), state.spread);
  controls.update(state);
  log.learn(state.nodes);
  if (firstState) {
    for (const entry of state.actions) log.action(entry);
    firstState = false;
  }
}

function onEvent(message) {
  window.dashboard.events += 1;
  const { node, event } = message;
  if (event.type === "block_connected") graph.blockArrived(node, event.hash, message.t);
  if (event.type === "reorg") {
    showBanner(`${node} reorganised: ${event.depth} block(s) above height ${event.fork_height} replaced by ${event.connected}`);
  }
  log.event(node, event);
}

function showBanner(text) {
  const banner = $("reorg-banner");
  banner.textContent = text;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { banner.hidden = true; }, BANNER_MS);
}

function setConnection(state, text) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = text;
}

// What to do with each kind of message from the server. A panel in a module of its own (the
// lessons) listens to "forklab:message" events instead, which carry every message.
const HANDLERS = {
  state: drawState,
  event: onEvent,
  action: (message) => log.action(message),
  events_lost: (message) => log.add(`${message.count} event(s) skipped (the page fell behind)`),
};

function connect() {
  const depth = $("depth").value;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/stream?depth=${depth}`);
  socket.addEventListener("open", () => {
    setConnection("live", "live");
    window.dispatchEvent(new CustomEvent("forklab:connected"));
  });
  socket.addEventListener("message", (e) => {
    const message = JSON.parse(e.data);
    const handle = HANDLERS[message.type];
    if (handle) handle(message);
    window.dispatchEvent(new CustomEvent("forklab:message", { detail: message }));
  });
  socket.addEventListener("close", () => {
    setConnection("lost", "reconnecting…");
    socket = null;
    setTimeout(connect, RECONNECT_MS);
  });
}

$("depth").addEventListener("change", () => {
  // A new depth needs a new stream; closing makes the handler above reconnect with it.
  if (socket) socket.close();
});

connect();
