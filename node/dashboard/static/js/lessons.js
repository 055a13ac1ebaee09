// The lessons panel: the fork lab's built-in scenarios, each with its explanation, a form of
// parameters and a start button; then the run, narrated as it happens, and its summary with
// the numbers measured.
//
// The server runs one lesson at a time (docs/dashboard.md). Its progress arrives on the
// dashboard's stream as "lesson" messages, which main.js passes on as "forklab:message" events:
// each carries the run's state and its new narration lines, numbered, so a page that missed
// one (or connects late) reads the whole run from /api/lessons/current.

import { getJson, html, percent, postJson } from "./dom.js";

const root = document.getElementById("lessons");

const BACKEND_TEXT = {
  real: "real nodes",
  simulated: "simulator",
};

const STATUS_TEXT = {
  starting: "starting…",
  running: "running",
  measuring: "measuring how often…",
  stopping: "stopping…",
  done: "finished",
  stopped: "stopped",
  failed: "failed",
};

class LessonsPanel {
  constructor(div) {
    this.div = div;
    this.lessons = [];
    this.chosen = null;
    this.run = null;
    this.nextLine = 0;
    this.refreshing = null;
    this.again = false;
    this.tabs = html("nav", { class: "lesson-tabs", role: "tablist", "aria-label": "lessons" });
    this.detail = html("div", { class: "lesson-detail" });
    this.runView = html("section", { class: "lesson-run", "aria-live": "polite", hidden: "" });
    this.div.append(this.tabs, this.detail, this.runView);
  }

  async load() {
    const reply = await getJson("/api/lessons");
    if (!reply) {
      this.div.prepend(html("p", { class: "lesson-error", text: "The lessons could not be read." }));
      return;
    }
    this.lessons = reply.lessons;
    this.renderTabs();
    this.choose(this.lessons[0] && this.lessons[0].name);
    await this.refresh();
  }

  // -- the catalogue

  renderTabs() {
    this.tabs.replaceChildren(
      ...this.lessons.map((lesson) => {
        const tab = html(
          "button",
          { type: "button", role: "tab", class: "secondary", "data-lesson": lesson.name },
          lesson.title,
          html("span", { class: `badge ${lesson.backend}`, text: BACKEND_TEXT[lesson.backend] }),
        );
        tab.addEventListener("click", () => this.choose(lesson.name));
        return tab;
      }),
    );
  }

  choose(name) {
    this.chosen = name;
    for (const tab of this.tabs.children) {
      tab.setAttribute("aria-selected", String(tab.dataset.lesson === name));
    }
    const lesson = this.lessons.find((l) => l.name === name);
    this.detail.replaceChildren(...(lesson ? [this.lessonView(lesson)] : []));
    this.updateButtons();
  }

  lessonView(lesson) {
    const minutes = Math.max(1, Math.round(lesson.live_seconds / 60));
    const where =
      lesson.backend === "real" && lesson.simulate_by_default
        ? html(
            "p",
            { class: "where simulated" },
            html("strong", { text: "Simulated by default" }),
            ` (in a few seconds): on real nodes its blocks take about ${minutes} minutes. ` +
              "Untick “run in the simulator instead” to watch it live on a devnet of its own.",
          )
        : lesson.backend === "real"
        ? html("p", { class: "where real" }, "Runs on real nodes: a devnet of its own, shown live in the panels above while it runs.")
        : html(
            "p",
            { class: "where simulated" },
            html("strong", { text: "Simulated" }),
            " (virtual time, in a few seconds), because real nodes cannot do this: ",
            html("ul", {}, ...lesson.reasons.map((r) => html("li", { text: r }))),
          );
    // "Run in the simulator instead" only means something where real nodes are the default.
    const shown = lesson.parameters.filter((p) => p.name !== "simulate" || lesson.backend === "real");
    const fields = shown.map(field);
    const start = html("button", { type: "submit", class: "start", text: "Start" });
    const error = html("p", { class: "lesson-error", hidden: "" });
    const form = html(
      "form",
      { class: "lesson-form", "data-lesson": lesson.name },
      ...fields,
      start,
      error,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.start(lesson, form, error);
    });
    return html(
      "article",
      { class: "lesson", "data-lesson": lesson.name },
      html("h3", { text: lesson.title }),
      html("p", { class: "explanation", text: lesson.explanation }),
      where,
      form,
    );
  }

  async start(lesson, form, error) {
    error.hidden = true;
    const body = {};
    for (const parameter of lesson.parameters) {
      const input = form.elements[parameter.name];
      if (!input) continue;
      if (parameter.kind === "bool") {
        if (input.checked !== Boolean(parameter.default)) body[parameter.name] = input.checked;
      } else if (input.value !== "" && Number(input.value) !== parameter.default) {
        body[parameter.name] = parameter.kind === "int" ? Math.round(Number(input.value)) : Number(input.value);
      }
      if (!input.checkValidity()) {
        error.textContent = `${parameter.label}: ${input.validationMessage}`;
        error.hidden = false;
        return;
      }
    }
    for (const button of this.div.querySelectorAll("button.start")) button.disabled = true;
    const reply = await postJson(`/api/lessons/${lesson.name}/start`, body);
    if (!reply.ok) {
      error.textContent = reply.error;
      error.hidden = false;
      this.updateButtons();
      return;
    }
    this.adopt(reply.run);
  }

  async stop() {
    const reply = await postJson("/api/lessons/stop", {});
    if (reply.ok) this.adopt(reply.run);
  }

  updateButtons() {
    const busy = Boolean(this.run && this.run.active);
    for (const button of this.div.querySelectorAll("button.start")) {
      button.disabled = busy;
      button.title = busy ? "a lesson is running: stop it or wait for its summary" : "";
    }
    // The controls act on the class devnet, which the page does not show while a lesson's own
    // devnet is on it: the style sheet greys them out.
    if (busy && this.run.backend === "real") document.body.dataset.lessonDevnet = this.run.lesson;
    else delete document.body.dataset.lessonDevnet;
  }

  // -- the run

  async refresh() {
    // One read at a time; a read asked for meanwhile runs after it (a line missed while the
    // first read was answered would otherwise stay missing if no line came after it).
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        const reply = await getJson("/api/lessons/current");
        if (reply) this.adopt(reply.run, true);
      } while (this.again);
    })();
    try {
      await this.refreshing;
    } finally {
      this.refreshing = null;
    }
  }

  adopt(run, whole = false) {
    if (!run) return;
    if (!this.run || this.run.id !== run.id || whole) {
      this.run = run;
      this.nextLine = 0;
      this.buildRun();
      if (run.lines) this.addLines(run.lines, run.dropped);
    } else {
      this.run = run;
    }
    this.renderRun();
  }

  onMessage(message) {
    if (message.type === "events_lost") {
      this.refresh();
      return;
    }
    if (message.type !== "lesson") return;
    const run = message.run;
    const fresh = !this.run || this.run.id !== run.id;
    const first = message.lines.length ? message.lines[0].n : this.nextLine;
    if ((fresh && first !== 0) || (!fresh && first > this.nextLine)) {
      this.refresh(); // a line was missed: read the whole run
      return;
    }
    this.adopt(run);
    this.addLines(message.lines, 0);
  }

  buildRun() {
    const run = this.run;
    this.runView.hidden = false;
    this.runHead = html("h3", {});
    this.runStatus = html("span", { class: "status" });
    this.stopButton = html("button", { type: "button", class: "stop", text: "Stop" });
    this.stopButton.addEventListener("click", () => this.stop());
    this.simNote = html("p", { class: "where simulated" });
    this.narration = html("ol", { class: "narration" });
    this.summary = html("div", { class: "lesson-summary" });
    this.runView.dataset.lesson = run.lesson;
    this.runView.replaceChildren(
      html("div", { class: "run-head" }, this.runHead, this.runStatus, this.stopButton),
      this.simNote,
      this.narration,
      this.summary,
    );
  }

  addLines(lines, dropped) {
    if (dropped) {
      this.narration.append(html("li", { class: "dropped", text: `… ${dropped} earlier lines` }));
    }
    const stick = this.narration.scrollTop + this.narration.clientHeight >= this.narration.scrollHeight - 8;
    for (const line of lines) {
      if (line.n < this.nextLine) continue;
      this.nextLine = line.n + 1;
      const item = html(
        "li",
        { class: `line ${line.kind}` + (line.ok === false ? " failed" : ""), "data-n": line.n },
        html("time", { text: `${line.t.toFixed(1)} s` }),
        line.text,
      );
      this.narration.append(item);
    }
    if (stick) this.narration.scrollTop = this.narration.scrollHeight;
  }

  renderRun() {
    const run = this.run;
    if (!run || !this.runHead) return;
    this.runHead.textContent = `${run.title} · ${run.backend === "real" ? "real nodes" : "simulated"}`;
    let status = STATUS_TEXT[run.status] || run.status;
    if (run.rate_progress) status += ` (${run.rate_progress[0]} of ${run.rate_progress[1]} runs)`;
    if (run.error) status += `: ${run.error}`;
    this.runStatus.textContent = status;
    this.runStatus.dataset.status = run.status;
    this.runView.dataset.status = run.status;
    this.stopButton.hidden = !run.active;
    this.stopButton.disabled = run.status === "stopping";
    this.simNote.hidden = run.backend !== "simulated";
    this.simNote.textContent = run.backend === "simulated"
      ? `Simulated, not real nodes: ${run.reasons.join("; ")}. Times are the scenario's (virtual).`
      : "";
    this.renderSummary(run);
    this.updateButtons();
  }

  renderSummary(run) {
    const summary = run.summary;
    if (!summary) {
      this.summary.replaceChildren();
      return;
    }
    const parts = [
      html("h4", { text: summary.passed ? "What was measured" : "What was measured (not as the lesson expects)" }),
      html("ul", { class: "headlines" }, ...summary.headlines.map((h) => html("li", { text: h }))),
    ];
    if (summary.checks.length) {
      parts.push(
        html("h4", { text: "What the lesson expects" }),
        html(
          "ul",
          { class: "checks" },
          ...summary.checks.map((c) =>
            html("li", { class: c.ok ? "ok" : "failed" }, `${c.ok ? "✓" : "✗"} ${c.expects} `, html("span", { class: "muted", text: `(${c.observed})` })),
          ),
        ),
      );
    }
    const miners = summary.report.miners.filter((m) => m.found > 0 || m.hash_share > 0);
    if (miners.length) parts.push(sharesChart(miners));
    if (run.rate) parts.push(rateView(run.rate));
    if (summary.tree_svg) {
      parts.push(
        html("h4", { text: "The block tree (simulated run)" }),
        html("img", {
          class: "tree-svg",
          alt: "the run's block tree and each miner's share",
          src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(summary.tree_svg)}`,
        }),
      );
    }
    this.summary.replaceChildren(...parts);
  }
}

function sharesChart(miners) {
  // Each miner: its share of the hash power beside its share of the chain's blocks.
  const rows = miners.map((m) =>
    html(
      "div",
      { class: "share-row", "data-miner": m.name },
      html("span", { class: "who", text: `${m.name}${m.strategy !== "honest" ? ` (${m.strategy})` : ""}` }),
      bar("hash", m.hash_share, `hash power ${percent(m.hash_share)}`),
      bar("chain", m.main_share, `chain ${percent(m.main_share)}`),
    ),
  );
  return html("div", { class: "shares" }, html("h4", { text: "Hash power against share of the chain" }), ...rows);
}

function bar(kind, share, label) {
  const fill = html("span", { class: `fill ${kind}` });
  fill.style.width = `${Math.max(0, Math.min(1, share || 0)) * 100}%`;
  return html("span", { class: "bar" }, fill, html("span", { class: "label", text: label }));
}

function rateView(rate) {
  const shown = rate.runs ? `${rate.succeeded} of ${rate.runs}` : "no runs";
  return html(
    "div",
    { class: "rate" },
    html("h4", { text: "How often does the attack succeed?" }),
    bar("chain", rate.rate, `${shown} simulated runs (${percent(rate.rate)}) at ${percent(rate.share)} of the hash power`),
    rate.complete ? null : html("p", { class: "muted", text: "(stopped before every seed ran)" }),
  );
}

function field(parameter) {
  const id = `lesson-${parameter.name}`;
  let input;
  if (parameter.kind === "bool") {
    input = html("input", { type: "checkbox", name: parameter.name, id });
    input.checked = Boolean(parameter.default);
  } else {
    const step = parameter.kind === "int" ? "1" : parameter.kind === "share" ? "0.01" : "0.1";
    const value = parameter.kind === "share" ? Number(parameter.default).toFixed(2) : parameter.default;
    input = html("input", {
      type: "number", name: parameter.name, id, value, step,
      min: parameter.minimum, max: parameter.maximum, required: "",
    });
  }
  return html("label", { class: `param ${parameter.kind}`, for: id }, `${parameter.label} `, input);
}

if (root) {
  const panel = new LessonsPanel(root);
  window.addEventListener("forklab:message", (e) => panel.onMessage(e.detail));
  window.addEventListener("forklab:connected", () => panel.refresh());
  panel.load();
  window.lessons = panel; // for tests and curious visitors
}
