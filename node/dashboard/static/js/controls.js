// Controls for every devnet action. Each form shows the terminal command that does the same,
// asked of the server (a dry run) whenever the form changes, so the page never has its own idea
// of the command line. Results arrive for every open page as "action" messages (see main.js).

import { html, postJson } from "./dom.js";

const PREVIEW_DELAY = 150;

// Each action: its label, how to build its fields, and how to read its JSON body.
const FORMS = [
  {
    action: "mine",
    title: "Mine",
    fields: (ctx) => [
      nodeSelect("node", ctx.nodes),
      number("blocks", 1, 1, 1000, "blocks"),
      html("label", {}, "reward to ", select("to", ["", ...ctx.payees], "reward to", 0, "default")),
    ],
    body: (f) => ({ node: f.node.value, blocks: Number(f.blocks.value), to: f.to.value }),
  },
  {
    action: "send",
    title: "Pay",
    fields: (ctx) => [
      select("from", ctx.payers, "from"),
      html("span", { text: "→" }),
      payee("to", ctx),
      number("amount", 1, 0.00000001, 21000000, "coins", "any"),
    ],
    body: (f) => ({ from: f.from.value, to: f.to.value.trim(), amount: f.amount.value }),
  },
  {
    action: "partition",
    title: "Partition",
    fields: (ctx) => [sides(ctx.nodes)],
    body: (f) => ({ groups: [checked(f)] }),
  },
  { action: "heal", title: "Heal", fields: () => [], body: () => ({}) },
  {
    action: "latency",
    title: "Latency",
    fields: (ctx) => [
      nodeSelect("a", ctx.nodes),
      html("span", { text: "↔" }),
      nodeSelect("b", ctx.nodes, 1),
      number("ms", 200, 0, 60000, "ms"),
    ],
    body: (f) => ({ a: f.a.value, b: f.b.value, ms: Number(f.ms.value) }),
  },
  {
    action: "kill",
    title: "Kill",
    fields: (ctx) => [select("node", ctx.processes, "node or miner")],
    body: (f) => ({ node: f.node.value }),
  },
  {
    action: "restart",
    title: "Restart",
    fields: (ctx) => [select("node", ctx.processes, "node or miner")],
    body: (f) => ({ node: f.node.value }),
  },
];

export class Controls {
  constructor(div) {
    this.div = div;
    this.signature = "";
  }

  update(state) {
    const nodes = state.nodes.map((n) => n.name);
    // A devnet pays from and to its named wallets; nodes started by hand from their own.
    const payers = state.wallets && state.wallets.length ? state.wallets : nodes;
    const processes = [...nodes, ...(state.miners || []).map((m) => m.name)];
    const ctx = { nodes, payers, payees: payers, processes };
    const signature = JSON.stringify([ctx, state.capabilities]);
    if (signature === this.signature) return;
    this.signature = signature;
    this.div.replaceChildren(
      ...FORMS.map((spec) => this.build(spec, ctx, state.capabilities.includes(spec.action))),
    );
  }

  build(spec, ctx, available) {
    const button = html("button", { type: "submit", text: spec.title });
    const command = html("code", { text: "" });
    const copy = html("button", { type: "button", class: "secondary", text: "copy" });
    const form = html(
      "form",
      { "data-action": spec.action },
      html("strong", { text: spec.title }),
      ...spec.fields(ctx),
      button,
      html("div", { class: "cli" }, command, copy),
    );
    if (!available) {
      button.disabled = true;
      form.append(html("span", { class: "unavailable", text: "needs a devnet (forklab devnet up)" }));
      form.querySelector(".cli").hidden = true;
      return form;
    }
    let timer = null;
    const preview = async () => {
      const reply = await postJson(`/api/actions/${spec.action}`, { ...spec.body(form.elements), dry_run: true });
      command.textContent = reply.command || reply.error || "";
      command.classList.toggle("muted", !reply.ok);
    };
    form.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(preview, PREVIEW_DELAY);
    });
    copy.addEventListener("click", () => copyText(command.textContent));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      button.disabled = true;
      try {
        const reply = await postJson(`/api/actions/${spec.action}`, spec.body(form.elements));
        if (reply.command) command.textContent = reply.command;
      } finally {
        button.disabled = false;
      }
    });
    preview();
    return form;
  }
}

function copyText(text) {
  // The clipboard API needs a secure context; loopback is one, a classroom LAN may not be.
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).catch(() => {});
  }
}

function select(name, options, label, selectedIndex = 0, emptyText = "") {
  const el = html("select", { name, "aria-label": label });
  options.forEach((option, i) => {
    const item = html("option", { value: option, text: option || emptyText });
    if (i === Math.min(selectedIndex, options.length - 1)) item.selected = true;
    el.append(item);
  });
  return el;
}

function nodeSelect(name, nodes, selectedIndex = 0) {
  return select(name, nodes, name, selectedIndex);
}

function number(name, value, min, max, unit, step = "1") {
  const input = html("input", { type: "number", name, value, min, max, step, "aria-label": unit });
  return html("label", {}, input, ` ${unit}`);
}

function payee(name, ctx) {
  const id = `payees-${name}`;
  const list = html("datalist", { id }, ...ctx.payees.map((p) => html("option", { value: p })));
  const input = html("input", {
    name, class: "address", list: id, value: ctx.payees[1] || ctx.payees[0] || "",
    "aria-label": "wallet, node or address to pay",
  });
  return html("span", {}, input, list);
}

function sides(nodes) {
  // Side A is chosen by ticking nodes; every node not ticked is on side B.
  const half = Math.ceil(nodes.length / 2);
  const boxes = nodes.map((name, i) => {
    const box = html("input", { type: "checkbox", name: "side", value: name });
    box.checked = i < half;
    return html("label", {}, box, ` ${name}`);
  });
  return html("fieldset", {}, html("span", { class: "muted", text: "side A:" }), ...boxes);
}

function checked(elements) {
  const boxes = elements.side;
  const list = boxes instanceof RadioNodeList ? [...boxes] : boxes ? [boxes] : [];
  return list.filter((b) => b.checked).map((b) => b.value);
}
