// The money panel: pick an address (or a wallet of the devnet) and follow its coins forward.
//
// The node does the tracing (/api/money/ADDR asks a running node's /rest/trace/ADDR, the
// haircut model of node/moneyflow.py); this module draws the answer as a graph, left to right
// by hop: each transaction a box, each of its outputs a row shaded by the part of it that
// descends from the address, and a line from every output to the transaction that spent it.
// Outputs paying the address itself are outlined. Receipts the address never passed on are
// folded into one box, so a miner's hundred coinbases do not bury the trail. The graph is
// traced again when a block arrives or the mempool changes (the dashboard's stream, passed on
// by main.js as "forklab:message" events).

import { getJson, html, shortHash, svg } from "./dom.js";

const root = document.getElementById("money");

const COLUMN = 250;
const BOX = 204;
const ROW = 22;
const HEAD = 20;
const GAP = 12;
const PAD = 10;
const REFRESH_MS = 400;
const HOLDERS = 8;

function amount(value) {
  return Number(value).toLocaleString("en", { maximumFractionDigits: value < 10 ? 8 : 2 });
}

function pct(fraction) {
  if (fraction >= 0.9995) return "100%";
  if (fraction > 0 && fraction < 0.001) return "<0.1%";
  return `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)}%`;
}

class MoneyPanel {
  constructor(div) {
    this.div = div;
    this.wallets = [];
    this.names = new Map();
    this.chosen = null;
    this.trace = null;
    this.watchKey = null;
    this.walletKey = null;
    this.timer = null;
    this.loading = false;
    this.again = false;

    this.input = html("input", {
      type: "text", id: "money-address", size: "38", spellcheck: "false",
      placeholder: "an address, or a wallet's name", "aria-label": "address to follow",
    });
    this.pick = html("select", { id: "money-wallets", "aria-label": "wallets of the devnet" });
    this.button = html("button", { type: "submit", text: "Follow the money" });
    const form = html("form", { class: "money-form" },
      html("label", {}, "address ", this.input),
      html("label", {}, "or a wallet ", this.pick),
      this.button);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.follow(this.input.value.trim());
    });
    this.pick.addEventListener("change", () => {
      if (this.pick.value) {
        this.input.value = this.pick.value;
        this.follow(this.pick.value);
      }
    });
    this.status = html("p", { class: "money-status muted", "aria-live": "polite",
      text: "Choose a wallet or paste an address: its coins are followed through every later transaction." });
    this.summary = html("div", { class: "money-summary" });
    this.scroll = html("div", { class: "money-scroll scroll-x" });
    this.graph = svg("svg", { id: "money-graph", role: "img", "aria-label": "where the coins went" });
    this.scroll.append(this.graph);
    this.div.append(form, this.status, this.summary, this.scroll);
    window.dashboard = window.dashboard || {};
    window.dashboard.money = this;
  }

  // -- the wallets of the devnet shown

  async loadWallets() {
    const reply = await getJson("/api/money");
    if (!reply || !Array.isArray(reply.wallets)) return;
    this.wallets = reply.wallets;
    this.names = new Map(this.wallets.map((w) => [w.address, w.name]));
    const options = [html("option", { value: "", text: this.wallets.length ? "—" : "none" })];
    for (const w of this.wallets) {
      options.push(html("option", { value: w.name, text: `${w.name} · ${shortHash(w.address)}` }));
    }
    this.pick.replaceChildren(...options);
    this.pick.disabled = this.wallets.length === 0;
  }

  onState(state) {
    const walletKey = `${state.network}|${(state.wallets || []).join(",")}`;
    if (walletKey !== this.walletKey) {
      this.walletKey = walletKey;
      this.loadWallets();
    }
    const mempool = state.nodes.reduce((sum, n) => sum + ((n.mempool && n.mempool.size) || 0), 0);
    const key = `${state.tree.best}|${mempool}`;
    if (key !== this.watchKey) {
      this.watchKey = key;
      if (this.chosen) this.schedule();
    }
  }

  // -- tracing

  follow(text) {
    if (!text) return;
    this.chosen = text;
    this.trace = null;
    this.status.textContent = `following ${text}…`;
    this.refresh();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    const chosen = this.chosen;
    try {
      const response = await fetch(`/api/money/${encodeURIComponent(chosen)}`);
      const reply = await response.json();
      if (chosen !== this.chosen) return;
      if (!response.ok) {
        this.status.textContent = reply.error || `HTTP ${response.status}`;
        this.status.classList.add("money-error");
        return;
      }
      this.status.classList.remove("money-error");
      this.trace = reply;
      this.render(reply);
    } catch (err) {
      this.status.textContent = `the dashboard did not answer (${err.message})`;
    } finally {
      this.loading = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  label(address) {
    return this.names.get(address) || shortHash(address);
  }

  // -- drawing

  render(trace) {
    const who = trace.name ? `${trace.name} (${trace.address})` : trace.address;
    this.status.textContent =
      `${who}, as ${trace.node} sees it at height ${trace.height}` +
      (trace.truncated ? ` · the graph stops at ${trace.max_txs} transactions or ${trace.max_hops} hops` : "");
    this.renderSummary(trace);
    this.renderGraph(trace);
  }

  renderSummary(trace) {
    const holders = new Map();
    for (const tx of trace.txs) {
      for (const out of tx.vout) {
        if (!out.spent && out.traced > 0 && !out.is_target) {
          holders.set(out.address, (holders.get(out.address) || 0) + Number(out.traced));
        }
      }
    }
    const ranked = [...holders.entries()].sort((a, b) => b[1] - a[1]).slice(0, HOLDERS);
    const facts = html("p", {},
      `received ${amount(trace.received)}`,
      trace.recirculated > 0 ? ` (of which ${amount(trace.recirculated)} its own coins coming back)` : "",
      ` · ${trace.txs.length} transaction(s), ${Math.max(trace.hops, 0)} hop(s) deep`,
      ` · traced coins ${amount(trace.traced)}: ${amount(trace.unspent)} unspent, ${amount(trace.fees)} paid as fees`);
    const list = html("ol", { class: "money-holders" },
      ...ranked.map(([address, value]) => html("li", {},
        html("span", { class: "who", text: this.label(address) }),
        ` holds ${amount(value)} of it`)));
    this.summary.replaceChildren(facts, ranked.length ? html("p", { class: "muted", text: "Where the coins are now (besides the address itself):" }) : "", ranked.length ? list : "");
  }

  renderGraph(trace) {
    const g = this.graph;
    g.replaceChildren();
    const inGraph = new Set(trace.txs.map((tx) => tx.txid));
    const passedOn = (tx) => tx.vout.some((o) => o.spentby && inGraph.has(o.spentby));
    const folded = trace.txs.filter((tx) => tx.hop === 0 && !passedOn(tx));
    const shown = trace.txs.filter((tx) => !(tx.hop === 0 && !passedOn(tx)));
    const columns = [];
    for (const tx of shown) (columns[tx.hop] = columns[tx.hop] || []).push(tx);
    const rows = new Map();   // "txid:n" -> {x, y} of the row's right edge
    const heads = new Map();  // txid -> {x, y} of the box's left edge
    let height = PAD;
    const edges = svg("g", { class: "money-edges" }, g);

    let y0 = PAD;
    if (folded.length) {
      const total = folded.reduce((sum, tx) => sum + tx.vout.filter((o) => o.is_target)
        .reduce((s, o) => s + Number(o.value), 0), 0);
      const box = svg("g", { class: "money-folded" }, g);
      svg("rect", { x: PAD, y: y0, width: BOX, height: HEAD + ROW, rx: 4 }, box);
      svg("text", { x: PAD + 6, y: y0 + 14 }, box).textContent =
        `${folded.length} receipt(s) never passed on`;
      svg("text", { x: PAD + 6, y: y0 + HEAD + 15, class: "amount" }, box).textContent =
        `${amount(total)} to ${trace.name || shortHash(trace.address)}`;
      y0 += HEAD + ROW + GAP;
    }
    columns.forEach((txs, hop) => {
      const x = PAD + hop * COLUMN;
      let y = hop === 0 ? y0 : PAD;
      for (const tx of txs || []) {
        const box = svg("g", { class: "money-tx", "data-txid": tx.txid }, g);
        const h = HEAD + tx.vout.length * ROW;
        svg("rect", { x, y, width: BOX, height: h, rx: 4, class: "frame" }, box);
        const where = tx.height === null ? "mempool" : `height ${tx.height}`;
        const head = svg("text", { x: x + 6, y: y + 14, class: "head" }, box);
        head.textContent = `${tx.coinbase ? "coinbase" : shortHash(tx.txid)} · ${where}`;
        svg("title", {}, box).textContent =
          `${tx.txid}\n${where}, ${tx.confirmations} confirmation(s)\ninputs ${amount(tx.value_in)}, ` +
          `${amount(tx.traced_in)} traced (${pct(tx.fraction)}); fee ${amount(tx.fee)}`;
        heads.set(tx.txid, { x, y: y + HEAD / 2 });
        tx.vout.forEach((out, i) => {
          const ry = y + HEAD + i * ROW;
          const row = svg("g", { class: `money-out${out.is_target ? " target" : ""}${out.spent ? " spent" : ""}` }, box);
          const shade = svg("rect", { x: x + 3, y: ry + 1, width: BOX - 6, height: ROW - 3, rx: 3, class: "out" }, row);
          shade.style.setProperty("--traced", String(0.08 + 0.47 * out.fraction));
          const text = svg("text", { x: x + 8, y: ry + 15, class: "amount" }, row);
          text.textContent = `${amount(out.value)} · ${pct(out.fraction)}`;
          const payee = svg("text", { x: x + BOX - 8, y: ry + 15, class: "payee", "text-anchor": "end" }, row);
          payee.textContent = `${this.label(out.address)}${out.spent ? "" : " ●"}`;
          svg("title", {}, row).textContent =
            `${out.address}\n${amount(out.value)}, of which ${amount(out.traced)} (${pct(out.fraction)}) descends from the address\n` +
            (out.spent ? `spent by ${out.spentby}` : "unspent");
          rows.set(`${tx.txid}:${out.n}`, { x: x + BOX, y: ry + ROW / 2, fraction: out.fraction });
        });
        y += h + GAP;
      }
      height = Math.max(height, y);
    });
    for (const tx of shown) {
      const head = heads.get(tx.txid);
      for (const spend of tx.spends) {
        const from = rows.get(`${spend.txid}:${spend.vout}`);
        if (!from || !head) continue;
        const mid = (from.x + head.x) / 2;
        const path = svg("path", {
          d: `M${from.x},${from.y} C${mid},${from.y} ${mid},${head.y} ${head.x},${head.y}`,
        }, edges);
        path.style.setProperty("--traced", String(0.25 + 0.75 * from.fraction));
      }
    }
    const width = PAD * 2 + Math.max(1, columns.length) * COLUMN - (COLUMN - BOX);
    g.setAttribute("width", String(width));
    g.setAttribute("height", String(Math.max(height, y0) + PAD));
    g.setAttribute("viewBox", `0 0 ${width} ${Math.max(height, y0) + PAD}`);
  }
}

if (root) {
  const panel = new MoneyPanel(root);
  panel.loadWallets();
  window.addEventListener("forklab:message", (e) => {
    if (e.detail && e.detail.type === "state") panel.onState(e.detail);
  });
}
