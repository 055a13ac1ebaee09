// The block tree across all nodes, drawn from the server's layout (heights and lanes).
//
// The server decides what is main, fork or stale and which lane each branch takes; this view
// only places blocks (x from the height, y from the lane), draws edges and each node's tip
// flag, and animates changes. Elements are keyed by block hash and moved with CSS
// transitions, so a reorganisation is seen as branches sliding between lanes, flags moving
// to the new tip and the losing blocks flashing as they turn stale.

import { colourOf, svg } from "./dom.js";

const COL = 56;       // pixels per height
const LANE = 50;      // pixels per lane
const BLOCK_W = 44;
const BLOCK_H = 26;
const FLAG_W = 26;
const FLAG_H = 14;
const AXIS = 18;      // the height labels
const BAND = 34;      // room for tip flags above lane 0, below the height labels
const COLLAPSED_W = 150;

export class TreeView {
  constructor(svgEl, scroller) {
    this.svg = svgEl;
    this.scroller = scroller;
    this.axis = svg("g", { class: "axis" }, svgEl);
    this.collapsed = svg("g", { class: "collapsed" }, svgEl);
    this.edgeLayer = svg("g", {}, svgEl);
    this.blockLayer = svg("g", {}, svgEl);
    this.tipLayer = svg("g", {}, svgEl);
    this.blocks = new Map();   // hash -> {g, title, status}
    this.edges = new Map();    // hash of the child -> path
    this.flags = new Map();    // node name -> g
    this.drawn = false;
  }

  render(tree, nodes) {
    const floor = tree.collapsed.below_height;
    const left = (tree.collapsed.blocks > 0 ? COLLAPSED_W + 12 : 8) + BLOCK_W / 2;
    const x = (height) => left + (height - floor) * COL;
    const y = (lane) => AXIS + BAND + lane * LANE;
    const top = tree.blocks.reduce((m, b) => Math.max(m, b.height), floor);
    const flagsPerTip = countFlags(tree.tips);
    const width = x(top) + BLOCK_W + Math.max(40, flagsPerTip * (FLAG_W + 2) / 2);
    const height = y(Math.max(tree.lanes, 1) - 1) + BLOCK_H / 2 + 10;
    const stick = this.scroller.scrollLeft + this.scroller.clientWidth >= this.scroller.scrollWidth - 80;
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);

    this.drawAxis(floor, top, x);
    this.drawCollapsed(tree.collapsed, y);
    const byHash = new Map(tree.blocks.map((b) => [b.hash, b]));
    this.drawBlocks(tree.blocks, x, y, nodes);
    this.drawEdges(tree.blocks, byHash, x, y);
    this.drawFlags(tree.tips, byHash, nodes, x, y);
    this.drawn = true;
    if (stick) this.scroller.scrollLeft = this.scroller.scrollWidth;
  }

  drawAxis(floor, top, x) {
    this.axis.replaceChildren();
    const step = top - floor > 60 ? 10 : top - floor > 20 ? 5 : 1;
    for (let h = floor; h <= top; h += 1) {
      if (h % step !== 0 && h !== top) continue;
      svg("text", { x: x(h), y: 12 }, this.axis).textContent = h;
    }
  }

  drawCollapsed(collapsed, y) {
    this.collapsed.replaceChildren();
    if (collapsed.blocks === 0) return;
    const g = this.collapsed;
    svg("rect", { x: 4, y: y(0) - BLOCK_H / 2, width: COLLAPSED_W, height: BLOCK_H }, g);
    const text = svg("text", { x: 12, y: y(0) + 4 }, g);
    const stale = collapsed.stale ? `, ${collapsed.stale} stale` : "";
    text.textContent = `◂ ${collapsed.blocks.toLocaleString("en")} earlier${stale}`;
    svg("title", {}, g).textContent =
      `Blocks below height ${collapsed.below_height} are collapsed to keep the picture readable.`;
  }

  drawBlocks(blocks, x, y, nodes) {
    const seen = new Set();
    for (const block of blocks) {
      seen.add(block.hash);
      let item = this.blocks.get(block.hash);
      if (!item) {
        item = this.createBlock(block);
        this.blocks.set(block.hash, item);
      }
      if (item.status && item.status !== block.status && block.status === "stale") {
        // It lost: flash it while it turns grey.
        item.g.classList.add("reorged");
        setTimeout(() => item.g.classList.remove("reorged"), 2500);
      }
      item.status = block.status;
      item.g.classList.remove("main", "fork", "stale");
      item.g.classList.add(block.status);
      item.g.dataset.status = block.status;
      item.g.style.transform = `translate(${x(block.height)}px, ${y(block.lane)}px)`;
      item.title.textContent = describe(block, nodes);
    }
    for (const [hash, item] of this.blocks) {
      if (!seen.has(hash)) {
        item.g.remove();
        this.blocks.delete(hash);
      }
    }
  }

  createBlock(block) {
    const g = svg("g", { class: `block ${block.status}` }, this.blockLayer);
    g.dataset.hash = block.hash;
    g.dataset.height = block.height;
    svg("rect", { x: -BLOCK_W / 2, y: -BLOCK_H / 2, width: BLOCK_W, height: BLOCK_H }, g);
    const label = svg("text", { y: 3.5 }, g);
    label.textContent = block.hash.slice(-4);
    const title = svg("title", {}, g);
    if (this.drawn) {
      g.classList.add("born");
      setTimeout(() => g.classList.remove("born"), 800);
    }
    return { g, title, status: null };
  }

  drawEdges(blocks, byHash, x, y) {
    const seen = new Set();
    for (const block of blocks) {
      const parent = byHash.get(block.prev);
      let d;
      const x2 = x(block.height) - BLOCK_W / 2;
      const y2 = y(block.lane);
      if (parent) {
        const x1 = x(parent.height) + BLOCK_W / 2;
        const y1 = y(parent.lane);
        const mid = (x1 + x2) / 2;
        d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
      } else if (block.height > 0) {
        // The parent is collapsed (or unknown): a stub. Written as a curve like the others,
        // because a path's shape only animates between paths of the same commands.
        const x1 = x2 - 14;
        d = `M ${x1} ${y2} C ${x1} ${y2}, ${x1} ${y2}, ${x2} ${y2}`;
      } else {
        continue;
      }
      seen.add(block.hash);
      let path = this.edges.get(block.hash);
      if (!path) {
        path = svg("path", {}, this.edgeLayer);
        this.edges.set(block.hash, path);
      }
      path.setAttribute("class", `edge ${block.status}`);
      path.style.d = `path("${d}")`;
    }
    for (const [hash, path] of this.edges) {
      if (!seen.has(hash)) {
        path.remove();
        this.edges.delete(hash);
      }
    }
  }

  drawFlags(tips, byHash, nodes, x, y) {
    const index = new Map(nodes.map((n, i) => [n.name, i]));
    const up = new Map(nodes.map((n) => [n.name, n.up]));
    const holders = new Map();
    for (const name of nodes.map((n) => n.name)) {
      const hash = tips[name];
      if (!hash || !byHash.has(hash)) continue;
      if (!holders.has(hash)) holders.set(hash, []);
      holders.get(hash).push(name);
    }
    const seen = new Set();
    for (const [hash, names] of holders) {
      const block = byHash.get(hash);
      const row = names.length * (FLAG_W + 2) - 2;
      names.forEach((name, k) => {
        seen.add(name);
        let flag = this.flags.get(name);
        if (!flag) {
          flag = svg("g", { class: "tip" }, this.tipLayer);
          flag.dataset.node = name;
          svg("rect", { x: 0, y: 0, width: FLAG_W, height: FLAG_H, rx: 3,
            fill: colourOf(index.get(name)) }, flag);
          svg("text", { x: FLAG_W / 2, y: 10.5 }, flag).textContent = name.slice(0, 4);
          svg("title", {}, flag).textContent = `${name}'s tip`;
        }
        flag.classList.toggle("down", !up.get(name));
        flag.dataset.tip = hash;
        const fx = x(block.height) - row / 2 + k * (FLAG_W + 2);
        const fy = y(block.lane) - BLOCK_H / 2 - FLAG_H - 3;
        flag.style.transform = `translate(${fx}px, ${fy}px)`;
        this.flags.set(name, flag);
      });
    }
    for (const [name, flag] of this.flags) {
      if (!seen.has(name)) {
        flag.remove();
        this.flags.delete(name);
      }
    }
  }
}

function countFlags(tips) {
  const counts = new Map();
  for (const hash of Object.values(tips)) counts.set(hash, (counts.get(hash) || 0) + 1);
  return Math.max(0, ...counts.values());
}

function describe(block, nodes) {
  const lines = [
    `block ${block.height} (${block.status})`,
    block.hash,
    `mined ${new Date(block.time * 1000).toLocaleString("en-GB")}`,
  ];
  if (block.txs !== null) lines.push(`${block.txs} transaction(s)`);
  if (block.first_node) {
    lines.push(`first seen at ${block.first_node}`);
    const order = nodes.map((n) => n.name).filter((n) => n in block.seen_ms);
    for (const name of order) {
      if (name !== block.first_node) lines.push(`  ${name}: +${block.seen_ms[name]} ms`);
    }
  }
  return lines.join("\n");
}
