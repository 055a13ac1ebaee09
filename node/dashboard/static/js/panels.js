// The text panels: the nodes table, the money supply, the last block's spread, and the log of
// what happened (blocks, reorganisations, payments, peers and every action with its command).

import { clock, coins, colourOf, html, percent, shortHash } from "./dom.js";

const LOG_LINES = 200;

export function renderNodes(tbody, nodes) {
  const rows = nodes.map((node, i) => {
    const state = !node.up ? "down" : node.syncing ? "syncing" : "up";
    const row = html(
      "tr",
      { class: node.up ? "" : "down", "data-node": node.name },
      html("td", {}, html("span", { class: "dot", style: `background:${colourOf(i)}` }), node.name),
      html("td", { class: `state-${node.up ? "up" : "down"}`, title: node.error || "", text: state }),
      html("td", { class: "num", text: node.height ?? "—" }),
      html("td", { class: "mono", title: node.tip || "", text: shortHash(node.tip) }),
      html("td", { class: "num", text: node.up ? node.peers : "—" }),
      html("td", { class: "num", title: `${node.mempool.bytes} bytes`, text: node.up ? node.mempool.size : "—" }),
      html("td", { class: "num", text: percent(node.hash_share) }),
      html("td", { class: "num", title: `${node.found} block(s)`, text: percent(node.found_share) }),
    );
    return row;
  });
  tbody.replaceChildren(...rows);
}

export function renderChain(div, chain) {
  if (!chain) {
    div.replaceChildren(html("p", { class: "muted", text: "waiting for the nodes…" }));
    return;
  }
  const share = chain.supply / chain.cap;
  const bar = html("div", { class: "bar", title: `${(share * 100).toFixed(4)}% of the cap` },
    html("span", { style: `width:${Math.max(share * 100, 0.3)}%` }));
  const dl = html("dl", {});
  const item = (term, value) => dl.append(html("dt", { text: term }), html("dd", { text: value }));
  item("issued", `${coins(chain.supply, chain.coin)} of ${coins(chain.cap, chain.coin)} coins (${(share * 100).toFixed(2)}%)`);
  item("block subsidy", `${coins(chain.subsidy, chain.coin)} coins per block`);
  item("next halving", `at height ${chain.next_halving_height.toLocaleString("en")}, in ${chain.blocks_to_halving.toLocaleString("en")} block(s)`);
  item("halvings so far", `${chain.halvings} (every ${chain.halving_interval.toLocaleString("en")} blocks)`);
  div.replaceChildren(bar, dl);
  div.dataset.height = chain.height;
}

export function renderSpread(div, spread) {
  if (!spread) {
    div.replaceChildren(html("p", { text: "No block has arrived since the dashboard started." }));
    return;
  }
  const list = html("ol", {});
  for (const hop of spread.hops) {
    list.append(html("li", { text: `${hop.to}: +${hop.ms} ms (from ${hop.from})` }));
  }
  div.replaceChildren(
    html("span", { text: `Block ${spread.height} (${shortHash(spread.hash)}) appeared first at ${spread.origin}` }),
    spread.hops.length ? list : html("span", { text: "; no other node has it yet." }),
  );
  div.dataset.hash = spread.hash;
}

export class Log {
  constructor(list) {
    this.list = list;
    this.blocks = new Set();
    this.txs = new Set();
    this.names = new Map();  // P2P address -> node name
  }

  // Peers are reported by address; say which node that is when the address is a listener's.
  learn(nodes) {
    this.names = new Map(nodes.filter((n) => n.p2p_address).map((n) => [n.p2p_address, n.name]));
  }

  peer(address) {
    return this.names.get(address) || address;
  }

  add(text, { kind = "", command = null } = {}) {
    const item = html("li", { class: kind }, html("time", { text: clock() }), text);
    if (command) item.append(html("code", { text: command }));
    this.list.prepend(item);
    while (this.list.children.length > LOG_LINES) this.list.lastElementChild.remove();
  }

  // Turn a node event into a line of narration; the same block or transaction is told once.
  event(node, event) {
    switch (event.type) {
      case "block_connected":
        if (this.blocks.has(event.hash)) return;
        this.remember(this.blocks, event.hash);
        this.add(`block ${event.height} (${shortHash(event.hash)}, ${event.txs} tx) appeared at ${node}`, { kind: "block" });
        break;
      case "side_block":
        // A competing block a node keeps without switching to it (as much work as its tip,
        // seen second): the start of a fork, told once per node.
        if (this.blocks.has(`${node}:${event.hash}`)) return;
        this.remember(this.blocks, `${node}:${event.hash}`);
        this.add(`${node} keeps competing block ${event.height} (${shortHash(event.hash)}) beside its own tip: a fork`, { kind: "block" });
        break;
      case "reorg":
        this.add(`${node} switched branches: ${event.depth} block(s) disconnected above height ${event.fork_height}, ${event.connected} connected`, { kind: "reorg" });
        break;
      case "tx_accepted":
        if (this.txs.has(event.txid)) return;
        this.remember(this.txs, event.txid);
        this.add(`${node} received payment ${shortHash(event.txid)} (fee ${event.fee})`, { kind: "tx" });
        break;
      case "peer_connected":
        this.add(event.inbound
          ? `${node} accepted a connection from ${this.peer(event.address)}`
          : `${node} connected to ${this.peer(event.address)}`, { kind: "peer" });
        break;
      case "peer_disconnected":
        this.add(`${node} lost its link to ${this.peer(event.address)} (${event.reason})`, { kind: "peer" });
        break;
      case "stream_closed":
        this.add(`${node} stopped answering`, { kind: "failed" });
        break;
      default:
        break;
    }
  }

  action(entry) {
    const text = entry.ok ? entry.message : `${entry.action} failed: ${entry.message}`;
    this.add(text, { kind: entry.ok ? "action" : "action failed", command: entry.command });
  }

  remember(set, key) {
    set.add(key);
    if (set.size > 1000) set.delete(set.values().next().value);
  }
}
