// The network graph: nodes on a circle, their links, partitions drawn as cut links, and each
// new block's spread, hop by hop.
//
// The spread is animated from the nodes' own events as they arrive: the first node to connect
// a block pulses; each later node gets a packet from the neighbour that had the block earliest
// and a label with the real delay in milliseconds. Hops on loopback take a few milliseconds,
// too fast to see, so the animation plays them one hop after another at a readable pace while
// the labels keep the measured times.

import { colourOf, svg } from "./dom.js";

const WIDTH = 420;
const HEIGHT = 320;
const NODE_R = 20;
const HOP_MS = 450;       // animation time per hop
const LABEL_MS = 4000;    // how long a delay label stays
const REMEMBERED = 50;    // blocks whose arrivals are kept for the animation

export class GraphView {
  constructor(svgEl) {
    this.svg = svgEl;
    this.linkLayer = svg("g", {}, svgEl);
    this.nodeLayer = svg("g", {}, svgEl);
    this.fxLayer = svg("g", {}, svgEl);
    this.positions = new Map();
    this.peers = new Map();     // node -> {g, ring, height}
    this.links = [];
    this.arrivals = new Map();  // block hash -> Map(node -> {t, depth})
  }

  render(nodes, links) {
    this.layout(nodes);
    this.links = links;
    this.drawLinks(links);
    this.drawNodes(nodes);
  }

  layout(nodes) {
    const cx = WIDTH / 2;
    const cy = HEIGHT / 2;
    const r = nodes.length > 1 ? Math.min(WIDTH, HEIGHT) / 2 - NODE_R - 24 : 0;
    this.positions.clear();
    nodes.forEach((node, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / nodes.length;
      this.positions.set(node.name, [cx + r * Math.cos(angle), cy + r * Math.sin(angle)]);
    });
  }

  drawLinks(links) {
    this.linkLayer.replaceChildren();
    for (const link of links) {
      const a = this.positions.get(link.a);
      const b = this.positions.get(link.b);
      if (!a || !b) continue;
      const line = svg("line", {
        class: `link ${link.state}`, x1: a[0], y1: a[1], x2: b[0], y2: b[1],
      }, this.linkLayer);
      line.dataset.link = `${link.a}|${link.b}`;
      line.dataset.state = link.state;
      svg("title", {}, line).textContent = `${link.a} – ${link.b}: ${describeLink(link)}`;
      const mx = (a[0] + b[0]) / 2;
      const my = (a[1] + b[1]) / 2;
      if (link.state === "cut") {
        const mark = svg("g", { class: "scissors", transform: `translate(${mx} ${my})` }, this.linkLayer);
        svg("circle", { r: 11 }, mark);
        svg("text", {}, mark).textContent = "✂";
      }
      if (link.latency_ms > 0) {
        svg("text", { class: "latency", x: mx, y: my - 10 }, this.linkLayer).textContent =
          `${link.latency_ms} ms`;
      }
    }
  }

  drawNodes(nodes) {
    const seen = new Set();
    nodes.forEach((node, i) => {
      seen.add(node.name);
      let peer = this.peers.get(node.name);
      if (!peer) {
        const g = svg("g", { class: "peer" }, this.nodeLayer);
        g.dataset.node = node.name;
        const ring = svg("circle", { class: "ring", r: NODE_R, stroke: colourOf(i) }, g);
        svg("circle", { class: "body", r: NODE_R, fill: colourOf(i) }, g);
        svg("text", { class: "name" }, g).textContent = node.name.slice(0, 5);
        const height = svg("text", { class: "height", y: NODE_R + 13 }, g);
        const title = svg("title", {}, g);
        peer = { g, ring, height, title };
        this.peers.set(node.name, peer);
      }
      const [px, py] = this.positions.get(node.name);
      peer.g.setAttribute("transform", `translate(${px} ${py})`);
      peer.g.classList.toggle("down", !node.up);
      peer.height.textContent = node.up ? `#${node.height}` : "down";
      peer.title.textContent = node.up
        ? `${node.name}: height ${node.height}, ${node.peers} peer(s)`
        : `${node.name} is not answering: ${node.error || ""}`;
    });
    for (const [name, peer] of this.peers) {
      if (!seen.has(name)) {
        peer.g.remove();
        this.peers.delete(name);
      }
    }
  }

  // A node connected a block: animate its arrival.
  blockArrived(node, hash, t) {
    let arrivals = this.arrivals.get(hash);
    if (!arrivals) {
      arrivals = new Map();
      this.arrivals.set(hash, arrivals);
      if (this.arrivals.size > REMEMBERED) {
        this.arrivals.delete(this.arrivals.keys().next().value);
      }
    }
    if (arrivals.has(node)) return;
    if (arrivals.size === 0) {
      arrivals.set(node, { t, depth: 0 });
      this.pulse(node);
      return;
    }
    const source = this.sourceOf(node, arrivals);
    const depth = arrivals.get(source).depth + 1;
    const start = [...arrivals.values()][0].t;
    arrivals.set(node, { t, depth });
    this.sendPacket(source, node, (depth - 1) * HOP_MS, t - start);
  }

  sourceOf(node, arrivals) {
    let best = null;
    for (const link of this.links) {
      if (link.state !== "up") continue;
      const other = link.a === node ? link.b : link.b === node ? link.a : null;
      if (other && arrivals.has(other) && (!best || arrivals.get(other).t < arrivals.get(best).t)) {
        best = other;
      }
    }
    return best || arrivals.keys().next().value;
  }

  pulse(node) {
    const peer = this.peers.get(node);
    if (!peer) return;
    peer.ring.classList.remove("pulse");
    // Restart the CSS animation: force a style flush between removing and adding the class.
    void peer.ring.getBoundingClientRect();
    peer.ring.classList.add("pulse");
  }

  sendPacket(from, to, delay, ms) {
    const a = this.positions.get(from);
    const b = this.positions.get(to);
    if (!a || !b) return;
    const packet = svg("circle", { class: "packet", r: 5, cx: 0, cy: 0 }, this.fxLayer);
    packet.style.opacity = "0";
    const motion = packet.animate(
      [
        { transform: `translate(${a[0]}px, ${a[1]}px)`, opacity: 1 },
        { transform: `translate(${b[0]}px, ${b[1]}px)`, opacity: 1 },
      ],
      { duration: HOP_MS, delay, easing: "ease-in-out" },
    );
    motion.onfinish = () => {
      packet.remove();
      this.pulse(to);
      // One label per node: the latest block's delay replaces the previous one.
      this.fxLayer.querySelector(`.hop-label[data-node="${to}"]`)?.remove();
      const label = svg("text", { class: "hop-label", x: b[0], y: b[1] - NODE_R - 8 }, this.fxLayer);
      label.textContent = `+${ms} ms`;
      label.dataset.node = to;
      setTimeout(() => label.remove(), LABEL_MS);
    };
  }
}

function describeLink(link) {
  switch (link.state) {
    case "up": return "connected";
    case "cut": return "cut by the partition";
    case "down": return "a node is down";
    default: return "not connected";
  }
}
