// Small helpers shared by the views: element creation, formatting, node colours.

export const SVG_NS = "http://www.w3.org/2000/svg";

// One colour per node, in the order the dashboard lists them; kept apart from the block
// colours (blue main chain, orange branches, grey stale) so a tip flag never looks like a block.
const PALETTE = [
  "#6a1b9a", "#00838f", "#ad1457", "#2e7d32", "#5d4037",
  "#283593", "#827717", "#c2185b", "#37474f", "#00695c",
];

export function colourOf(index) {
  return PALETTE[index % PALETTE.length];
}

export function svg(tag, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  if (parent) parent.appendChild(el);
  return el;
}

export function html(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") el.textContent = value;
    else el.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

export function shortHash(hash) {
  return hash ? `${hash.slice(0, 6)}…${hash.slice(-4)}` : "—";
}

export function coins(units, coin) {
  const whole = units / coin;
  return whole.toLocaleString("en", { maximumFractionDigits: whole < 10 ? 8 : 2 });
}

export function percent(share) {
  if (share === null || share === undefined) return "—";
  return `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)}%`;
}

export function clock(date = new Date()) {
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

// The dashboard's own JSON API. A GET that fails, or answers with an error status, is null (the
// caller shows what it had); a POST always gives an object, with ok false and the reason if the
// dashboard could not be reached.
export async function getJson(url) {
  try {
    const response = await fetch(url);
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

export async function postJson(url, body) {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return await response.json();
  } catch (error) {
    return { ok: false, error: `the dashboard did not answer (${error.message})` };
  }
}
