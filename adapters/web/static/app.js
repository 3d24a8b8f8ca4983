// energytree dashboard: renders the server's live feed (SSE); no libraries, nothing external.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
// Eight colours far apart in hue and lightness; neighbouring layers never share a family.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                 "#17becf", "#bcbd22"];
const PHASE_DASH = ["", "6 3", "2 3"];
const PHASES = ["L1", "L2", "L3"];
let zone = "UTC";
let plan = null;
let evseUuids = [];

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

const num = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const limit = (v, digits = 1) => (v === null || v === undefined ? "∞" : Number(v).toFixed(digits));
const kw = (watts) => (watts === null || watts === undefined ? "–" : num(watts / 1000, 2));

function localTime(iso, withDate = false) {
  if (!iso) return "–";
  const opts = { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (withDate) Object.assign(opts, { weekday: "short", day: "numeric", month: "short" });
  return new Intl.DateTimeFormat("en-GB", opts).format(new Date(iso));
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell;
    tr.append(td);
  }
  return tr;
}

function fillTable(id, rows) {
  const body = $(`#${id} tbody`);
  body.replaceChildren(...rows.map(row));
}

// ---- live state ---------------------------------------------------------------------------

function renderEvses(evses) {
  const cards = evses.map((e) => {
    const card = el("article", { class: "card", "data-uuid": e.uuid });
    card.append(el("h3", {}, e.uuid));
    const dl = el("dl");
    const m = e.measured || {};
    const measured = (m.current_a || []).some((a) => a !== null)
      ? `${m.current_a.map((a) => num(a)).join(" / ")} A` +
        (m.phases !== null && m.phases !== undefined ? ` on ${m.phases} ph` : "")
      : "no reading";
    const t = e.target;
    const target = !t ? "none" : [
      t.energy_kwh !== null && t.energy_kwh !== undefined ? `${num(t.energy_kwh)} kWh` : null,
      t.soc_percent !== null && t.soc_percent !== undefined ? `to ${num(t.soc_percent, 0)} %` : null,
      t.leave_time ? `by ${localTime(t.leave_time, true)}` : null,
    ].filter(Boolean).join(" ") || "set";
    const items = [
      ["state", e.state || "–", "state"],
      ["granted", `${num(e.current_a)} A × ${e.phases} ph (${kw(e.power_w)} kW)`,
       "granted"],
      ["measured", measured, "measured"],
      ["why", e.reason || "–", "reason"],
      ["target", target, "target"],
      ["at leave", `${num(e.planned_kwh)} kWh` +
        (e.shortfall_kwh > 0.05 ? ` — short by ${num(e.shortfall_kwh)} kWh` : ""), "expected"],
    ];
    for (const [label, value, key] of items) {
      dl.append(el("dt", {}, label), el("dd", { "data-field": key }, value));
    }
    card.append(dl);
    return card;
  });
  $("#evses").replaceChildren(...cards);
  const uuids = evses.map((e) => e.uuid);
  if (uuids.join("\n") !== evseUuids.join("\n")) {
    evseUuids = uuids;
    const select = $("#target-uuid");
    const chosen = select.value;
    select.replaceChildren(...uuids.map((u) => el("option", { value: u }, u)));
    if (uuids.includes(chosen)) select.value = chosen;
  }
}

function phaseCell(node, k) {
  const span = el("span", {}, `${num(node.current_a[k])} / ${limit(node.limit_a[k])}`);
  if (node.binding_phase === k) {
    span.className = "binding";
    span.textContent += " ▲";
    span.title = `binding: ${node.limit_source || ""}`;
  }
  if (node.headroom_a[k] !== null && node.headroom_a[k] < -0.01) span.className = "over";
  return span;
}

function renderTree(nodes) {
  fillTable("tree", nodes.map((n) => {
    const name = el("span", {}, (n.evse ? "⚡ " : "▸ ") + n.uuid);
    name.style.paddingLeft = `${n.depth * 0.8}em`;  // CSSOM: allowed by the page's CSP
    const power = `${kw(n.power_w)} / ${n.limit_w === null ? "∞" : kw(n.limit_w)}`;
    return [name, phaseCell(n, 0), phaseCell(n, 1), phaseCell(n, 2), power];
  }));
  $("#tree").querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.uuid = nodes[i].uuid;
  });
}

function renderGrid(meter, sources) {
  $("#meter").textContent = !meter ? "no grid meter" :
    `grid meter: ${meter.state} · L1/L2/L3 ` +
    `${meter.current_a.map((a) => num(a)).join(" / ")} A · ${kw(meter.power_w)} kW`;
  fillTable("sources", sources.map((s) => [
    `${s.name} (${s.channel}) on ${s.node}`,
    s.value === null ? "–" : `${s.value} ${s.unit || ""}`,
    s.valid_until ? localTime(s.valid_until, true) : "open",
    [s.binding ? "binding" : null, s.failsafe ? "failsafe" : null].filter(Boolean).join(", ")
      || "in force",
  ]));
}

function renderVariables(vars, operator) {
  fillTable("variables", vars.map((v) => [
    v.name, String(v.expr), v.error ? `error: ${v.error}` : num(v.value, 3)]));
  $("#variable-form").hidden = !operator;
}

function renderLive(data) {
  zone = data.zone;
  $("#site").textContent = data.site;
  document.title = `${data.site} · energytree`;
  $("#clock").textContent = localTime(data.now, true);
  $("#plan-method").textContent = data.plan.method;
  renderEvses(data.evses);
  renderTree(data.tree);
  renderGrid(data.meter, data.sources);
  renderVariables(data.variables, $("#role").dataset.role === "operator");
  $("#plan-notes").replaceChildren(...data.plan.notes.map((n) => el("li", {}, n)));
  document.body.dataset.updated = data.now;
}

// ---- the plan chart ----------------------------------------------------------------------

function axisTicks(svg, x, t0, t1, top, bottom) {
  const hours = (t1 - t0) / 3600;
  const step = (hours > 48 ? 12 : hours > 12 ? 3 : 1) * 3600;
  let lastDay = "";
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const d = new Date(t * 1000);
    const day = new Intl.DateTimeFormat("en-GB", { timeZone: zone, weekday: "short",
                                                  day: "numeric", month: "short" }).format(d);
    svg.append(svgEl("line", { x1: x(t), x2: x(t), y1: top, y2: bottom, stroke: "#0002" }));
    svg.append(svgEl("text", { x: x(t) + 2, y: bottom + 13 }, localTime(d.toISOString())));
    if (day !== lastDay) {  // the date under the first tick of each day
      svg.append(svgEl("text", { x: x(t) + 2, y: bottom + 26, "font-weight": "bold" }, day));
    }
    lastDay = day;
  }
}

function stepPath(starts, end, values, x, y) {
  let d = "";
  values.forEach((v, i) => {
    if (v === null) return;
    const x0 = x(starts[i]), x1 = x(i + 1 < starts.length ? starts[i + 1] : end);
    d += `${d && values[i - 1] !== null && i > 0 ? "L" : "M"}${x0},${y(v)}L${x1},${y(v)}`;
  });
  return d;
}

function frame(svg, height) {
  const box = { l: 46, r: 50, t: 14, b: 32, w: 800, h: height };
  svg.replaceChildren();
  const t0 = plan.starts[0], t1 = plan.end;
  const x = (t) => box.l + ((t - t0) / (t1 - t0)) * (box.w - box.l - box.r);
  return { box, x, t0, t1 };
}

function drawPlan() {
  const svg = $("#plan-chart");
  if (!plan) { svg.replaceChildren(svgEl("text", { x: 20, y: 40 }, "no plan yet")); return; }
  const { box, x, t0, t1 } = frame(svg, 300);
  const n = plan.starts.length;
  const base = new Array(n).fill(0);
  const layers = plan.evses.map((e) => e.kw.map((v, i) => (base[i] += v || 0)));
  const limits = plan.site_limit_kw.filter((v) => v !== null);
  const top = Math.max(1, ...base, ...limits) * 1.15;
  const y = (v) => box.h - box.b - (v / top) * (box.h - box.t - box.b);
  const legend = [];
  layers.forEach((upper, k) => {
    const lower = k === 0 ? new Array(n).fill(0) : layers[k - 1];
    let d = "";
    for (let i = 0; i < n; i++) {
      const x0 = x(plan.starts[i]), x1 = x(i + 1 < n ? plan.starts[i + 1] : t1);
      d += `M${x0},${y(lower[i])}L${x0},${y(upper[i])}L${x1},${y(upper[i])}L${x1},${y(lower[i])}Z`;
    }
    const colour = PALETTE[k % PALETTE.length];
    const name = plan.evses[k].uuid;
    const path = svgEl("path", { d, fill: colour, "fill-opacity": k >= PALETTE.length ? 0.5 : 0.85 });
    path.append(svgEl("title", {}, `${name}: ${num(plan.evses[k].kwh)} kWh`));
    svg.append(path);
    legend.push([colour, `${name} ${num(plan.evses[k].kwh)} kWh`]);
  });
  svg.append(svgEl("path", { d: stepPath(plan.starts, t1, plan.site_limit_kw, x, y),
                             fill: "none", stroke: "#000", "stroke-dasharray": "6 3" }));
  legend.push(["#000", "site limit (dashed)"]);
  const prices = plan.price.filter((v) => v !== null);
  if (prices.length) {
    const lo = Math.min(...prices), hi = Math.max(...prices) + 1e-9;
    const py = (v) => box.h - box.b - ((v - lo) / (hi - lo)) * (box.h - box.t - box.b) * 0.9;
    svg.append(svgEl("path", { d: stepPath(plan.starts, t1, plan.price, x, py), fill: "none",
                               stroke: "#c00", "stroke-width": 1.5, class: "price" }));
    svg.append(svgEl("text", { x: box.w - box.r + 4, y: py(hi), fill: "#c00" }, num(hi, 3)));
    svg.append(svgEl("text", { x: box.w - box.r + 4, y: py(lo), fill: "#c00" }, num(lo, 3)));
    legend.push(["#c00", "price per kWh (right)"]);
  }
  for (const dep of plan.departures) {
    svg.append(svgEl("line", { x1: x(dep.at), x2: x(dep.at), y1: box.t, y2: box.h - box.b,
                               stroke: "#555", "stroke-dasharray": "2 3", class: "departure" }));
    svg.append(svgEl("text", { x: x(dep.at) + 2, y: box.t + 10 }, `⏏ ${dep.uuids.join(", ")}`));
  }
  for (const s of plan.shortfalls) {
    svg.append(svgEl("text", { x: x(s.at) - 2, y: box.t + 24, "text-anchor": "end",
                               fill: "#a40e26", class: "shortfall" },
                     `▼ ${s.uuid} short ${num(s.kwh)} kWh`));
  }
  axisTicks(svg, x, t0, t1, box.t, box.h - box.b);
  svg.append(svgEl("text", { x: 2, y: box.t + 4 }, `${num(top, 0)} kW`));
  svg.append(svgEl("text", { x: 2, y: box.h - box.b }, "0"));
  $("#plan-legend").replaceChildren(...legend.map(([c, label]) => {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = c;
    item.append(swatch, label);
    return item;
  }));
}

function drawPhases() {
  const svg = $("#phase-chart");
  const panel = plan && plan.phases.find((p) => p.uuid === $("#phase-node").value);
  if (!panel) { svg.replaceChildren(); return; }
  const { box, x, t1 } = frame(svg, 200);
  const values = [...panel.load_a.flat(), ...panel.limit_a.flat()].filter((v) => v !== null);
  const top = Math.max(1, ...values) * 1.15;
  const y = (v) => box.h - box.b - (v / top) * (box.h - box.t - box.b);
  for (let k = 0; k < 3; k++) {
    const dash = PHASE_DASH[k];
    svg.append(svgEl("path", { d: stepPath(plan.starts, t1, panel.limit_a[k], x, y),
                               fill: "none", stroke: "#000", "stroke-dasharray": dash || "none" }));
    svg.append(svgEl("path", { d: stepPath(plan.starts, t1, panel.load_a[k], x, y), fill: "none",
                               stroke: PALETTE[k], "stroke-width": 2,
                               "stroke-dasharray": dash || "none" }));
    const last = panel.limit_a[k].findLast((v) => v !== null);
    if (last !== undefined) {
      svg.append(svgEl("text", { x: box.w - box.r + 4, y: y(last) + 4 - k * 11 },
                       `${PHASES[k]} cap`));
    }
  }
  // which phase binds, slot by slot: a letter wherever it changes
  let previous = null;
  panel.binding_phase.forEach((k, i) => {
    if (k === null || k === previous) return;
    previous = k;
    svg.append(svgEl("text", { x: x(plan.starts[i]) + 1, y: box.t + 8, class: "binding" },
                     `▲${PHASES[k]}`));
  });
  axisTicks(svg, x, plan.starts[0], t1, box.t, box.h - box.b);
  svg.append(svgEl("text", { x: 2, y: box.t + 4 }, `${num(top, 0)} A`));
}

function renderPlan(data) {
  plan = data;
  const select = $("#phase-node");
  const chosen = select.value;
  const nodes = plan ? plan.phases.map((p) => p.uuid) : [];
  select.replaceChildren(...nodes.map((u) => el("option", { value: u }, u)));
  if (nodes.includes(chosen)) select.value = chosen;
  drawPlan();
  drawPhases();
}

// ---- forms and logs ----------------------------------------------------------------------

async function postForm(form, url, body, result) {
  form.querySelectorAll(".error").forEach((p) => { p.textContent = ""; });
  result.textContent = "…";
  const response = await fetch(url, { method: "POST", body: JSON.stringify(body),
                                      headers: { "Content-Type": "application/json" } });
  const answer = await response.json();
  if (response.ok) { result.textContent = "done"; return answer; }
  const fields = answer.fields || {};
  for (const [name, message] of Object.entries(fields)) {
    const slot = form.querySelector(`.error[data-for="${name}"]`);
    if (slot) slot.textContent = message;
  }
  result.textContent = Object.keys(fields).length ? "please correct the marked fields"
                                                  : answer.error;
  return null;
}

function targetBody(clear) {
  const form = $("#target-form");
  const body = Object.fromEntries(new FormData(form).entries());
  if (clear) return { uuid: body.uuid, clear: true };
  return body;
}

async function loadLogs() {
  const [audit, sessions] = await Promise.all([
    fetch("/api/audit").then((r) => r.json()), fetch("/api/sessions").then((r) => r.json())]);
  fillTable("audit", audit.slice(-50).reverse().map((a) => [
    a.source, localTime(a.start, true), a.end ? localTime(a.end, true) : "in force",
    a.value === null ? "–" : `${num(a.value, 0)} ${a.unit}`, a.detail]));
  fillTable("sessions", sessions.slice(-50).reverse().map((s) => [
    s.evse, localTime(s.start, true), s.stop ? localTime(s.stop, true) : "charging",
    num(s.energy_wh / 1000, 2)]));
}

function connect() {
  const feed = new EventSource("/api/events");
  const badge = $("#feed");
  feed.addEventListener("hello", (e) => {
    const role = JSON.parse(e.data).role;
    $("#role").textContent = role;
    $("#role").dataset.role = role;
  });
  feed.addEventListener("live", (e) => {
    badge.textContent = "live"; badge.className = "badge live";
    renderLive(JSON.parse(e.data));
  });
  feed.addEventListener("plan", (e) => { renderPlan(JSON.parse(e.data)); loadLogs(); });
  feed.onerror = () => { badge.textContent = "reconnecting…"; badge.className = "badge down"; };
}

document.addEventListener("DOMContentLoaded", () => {
  $("#target-form").addEventListener("submit", (e) => {
    e.preventDefault();
    postForm($("#target-form"), "/api/target", targetBody(false), $("#target-result"));
  });
  $("#target-clear").addEventListener("click", () => {
    postForm($("#target-form"), "/api/target", targetBody(true), $("#target-result"));
  });
  $("#variable-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = Object.fromEntries(new FormData($("#variable-form")).entries());
    postForm($("#variable-form"), "/api/variables", body, $("#variable-result"));
  });
  $("#phase-node").addEventListener("change", drawPhases);
  connect();
  loadLogs();
  setInterval(loadLogs, 30000);
});
