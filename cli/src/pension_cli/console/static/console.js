// The operators' console: plain DOM, no libraries. Every text shown is set as text, never as HTML.
"use strict";

const KEPT_ROWS = 200;
const CONSUMERS_EVERY_MS = 5000;
const SEEN_KEPT = 2000;
const seen = new Set();  // ids shown lately: a reconnected stream sends the kept events again
let shown = 0;
let stream = null;
let consumersTimer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

class SignedOut extends Error {}

async function api(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = response.status === 204 ? null : await response.json();
  if (response.status === 401 && !token) {
    showSignIn("Your session has ended: sign in again.");
    throw new SignedOut(answer.detail);
  }
  if (!response.ok) throw new Error(answer && answer.detail ? answer.detail : response.statusText);
  return answer;
}

// -- signing in and out ------------------------------------------------------------------------

function showSignIn(message = "") {
  stopWatching();
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  $("sign-in-error").textContent = "";
  try {
    await api("/console/session", { method: "POST", body: {}, token });
  } catch (error) {
    $("sign-in-error").textContent = error.message;
    return;
  }
  $("token").value = "";
  showDashboard();
}

async function signOut() {
  try {
    await api("/console/session", { method: "DELETE" });
  } catch (error) {
    if (error instanceof SignedOut) return;
  }
  showSignIn("Signed out.");
}

function showDashboard() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  watchEvents();
  refreshConsumers();
  consumersTimer = setInterval(refreshConsumers, CONSUMERS_EVERY_MS);
  for (const name of ["verification", "reconciliation", "monthly"]) showLatest(name);
}

function stopWatching() {
  if (stream) stream.close();
  stream = null;
  clearInterval(consumersTimer);
}

// -- the live view -------------------------------------------------------------------------------

function watchEvents() {
  if (stream) stream.close();
  const state = $("live-state");
  stream = new EventSource("/console/api/events");
  stream.onopen = () => { state.textContent = "live"; state.className = "badge live"; };
  stream.onerror = () => {
    state.textContent = "reconnecting";
    state.className = "badge down";
    // A refused stream (the session ended) is not retried by the browser: find out why.
    if (stream && stream.readyState === EventSource.CLOSED) api("/console/api/consumers").then(watchEvents, () => {});
  };
  stream.addEventListener("ledger-event", (message) => showEvent(JSON.parse(message.data)));
}

function showEvent(record) {
  if (seen.has(record.id)) return;
  seen.add(record.id);
  shown += 1;
  if (seen.size > SEEN_KEPT) seen.delete(seen.values().next().value);  // the oldest first
  const summary = record.summary;
  const row = summary
    ? el("tr", { class: "fresh", "data-id": record.id, "data-name": summary.name, "data-subject": summary.subject },
        el("td", {}, short(summary.time)), el("td", {}, record.topic), el("td", { title: summary.type }, summary.name),
        el("td", {}, summary.subject), el("td", { class: "num" }, summary.sequence))
    : el("tr", { class: "fresh", "data-id": record.id },
        el("td", {}, "-"), el("td", {}, record.topic), el("td", {}, "(not an event of this platform)"),
        el("td", {}, record.key), el("td", { class: "num" }, ""));
  const rows = $("live-rows");
  rows.prepend(row);
  while (rows.children.length > KEPT_ROWS) rows.lastElementChild.remove();
  $("live-count").textContent = `${shown} seen`;
}

// -- consumers and dead letters ----------------------------------------------------------------

async function refreshConsumers() {
  let looked;
  try {
    looked = await api("/console/api/consumers");
  } catch (error) {
    if (!(error instanceof SignedOut)) $("consumers-at").textContent = `unavailable: ${error.message}`;
    return;
  }
  $("consumers-at").textContent = `as of ${short(looked.at)}`;
  $("lag-rows").replaceChildren(...perTopic(looked.lag).map((r) => el("tr", {},
    el("td", {}, r.group), el("td", {}, r.topic), el("td", { class: "num" }, r.partitions),
    el("td", { class: "num" }, r.committed), el("td", { class: "num" }, r.end),
    el("td", { class: r.lag > 0 ? "num lagging" : "num", title: `most behind partition: ${r.worst}` }, r.lag))));
  $("dlq-rows").replaceChildren(...looked.dead_letters.map((r) => el("tr", {},
    el("td", {}, r.topic), el("td", { class: "num" }, r.parked), el("td", { class: "num" }, r.handled ?? "-"),
    el("td", { class: r.waiting > 0 ? "num lagging" : "num" }, r.waiting))));
  $("waiting-letters").replaceChildren(...looked.waiting.map((l) =>
    el("li", {}, `${l.letter} ${l.event_type ?? ""}: ${l.error ?? ""}`)));
}

// One line per group and topic (the partitions summed; the worst partition's lag in the title).
function perTopic(rows) {
  const lines = new Map();
  for (const r of rows) {
    const key = `${r.group} ${r.topic}`;
    const line = lines.get(key) ?? { group: r.group, topic: r.topic, partitions: 0, committed: 0, end: 0, lag: 0, worst: 0 };
    line.partitions += 1;
    line.committed += r.committed;
    line.end += r.end;
    line.lag += r.lag;
    line.worst = Math.max(line.worst, r.lag);
    lines.set(key, line);
  }
  return [...lines.values()];
}

// RFC 3339 to the second: the fraction is noise on a screen.
function short(moment) {
  return String(moment ?? "").replace(/\.[0-9]+/, "");
}

// -- verification, reconciliation, monthly figures: run on demand, the latest kept ---------------

const RENDER = { verification: showVerification, reconciliation: showReconciliation, monthly: showMonthly };

async function showLatest(name) {
  try {
    const latest = await api(`/console/api/${name}`);
    if (latest.computed_at) RENDER[name](latest);
    else if (name === "monthly") await run(name);
  } catch (error) {
    if (!(error instanceof SignedOut)) failed(name, error);
  }
}

async function run(name) {
  const button = document.querySelector(`button[data-run="${name}"]`);
  button.disabled = true;
  try {
    RENDER[name](await api(`/console/api/${name}`, { method: "POST", body: {} }));
  } catch (error) {
    if (!(error instanceof SignedOut)) failed(name, error);
  } finally {
    button.disabled = false;
  }
}

function failed(name, error) {
  const target = name === "monthly" ? $("monthly-through") : $(`${name}-body`);
  target.textContent = `failed: ${error.message}`;
}

function when(finding) {
  return el("small", {}, ` at ${short(finding.computed_at)} (${finding.took_ms} ms)`);
}

function showVerification(finding) {
  const result = finding.result;
  const verdict = result.intact
    ? el("span", { class: "verdict ok" }, "every ledger intact")
    : el("span", { class: "verdict broken" }, "BROKEN");
  const services = el("ul", {}, ...result.services.map((s) => el("li", {},
    el("span", { class: s.intact ? "ok" : "broken" }, s.intact ? "intact" : "BROKEN"),
    ` ${s.service}: ${s.streams} streams, ${s.events} events checked`,
    s.first_break ? ` — first break: stream ${s.first_break.stream} sequence ${s.first_break.sequence} ` +
      `event ${s.first_break.event_id}: ${s.first_break.reason}` : "")));
  $("verification-body").replaceChildren(verdict, when(finding), services);
}

function showReconciliation(finding) {
  const r = finding.result;
  const verdict = r.balanced
    ? el("span", { class: "verdict ok" }, "balanced")
    : el("span", { class: "verdict broken" }, `${r.breaks.length} break(s)`);
  const counts = el("div", {}, `${r.participant_years} participant-years, ${r.contributions} contributions, ` +
    `${r.payments} payments, ${r.instalments} instalments`);
  const breaks = el("ul", {}, ...r.breaks.slice(0, 20).map((b) => el("li", { class: "broken" },
    `[${b.area}] ${b.subject}: ${b.reason}`)));
  $("reconciliation-body").replaceChildren(verdict, when(finding), counts, breaks);
}

function yuan(text) {
  return Number(text).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function showMonthly(finding) {
  const months = finding.result.months;
  $("monthly-through").replaceChildren(`through ${finding.result.through}`, when(finding));
  $("monthly-chart").replaceChildren(chart(months));
  $("monthly-rows").replaceChildren(...months.slice().reverse().map((m) => el("tr", {},
    el("td", {}, m.month), el("td", { class: "num" }, m.total.accounts_opened),
    el("td", { class: "num" }, m.total.participants_contributing), el("td", { class: "num" }, yuan(m.total.contributed)),
    el("td", { class: "num" }, m.total.withdrawals), el("td", { class: "num" }, yuan(m.total.withdrawn)),
    el("td", { class: "num" }, yuan(m.total.tax_withheld)))));
}

// Two bars a month, contributed and withdrawn, on one scale in yuan, drawn as inline SVG.
function chart(months) {
  const width = 960, height = 240, left = 84, right = 12, top = 26, bottom = 28;
  const series = [["contributed", "contributed"], ["withdrawn", "withdrawn"]];
  const highest = Math.max(1, ...months.flatMap((m) => series.map(([key]) => Number(m.total[key]))));
  const step = niceStep(highest / 4);
  const ceiling = Math.ceil(highest / step) * step;
  const y = (value) => top + (height - top - bottom) * (1 - value / ceiling);
  const slot = (width - left - right) / months.length;
  const bar = Math.min(28, slot / 3);
  const picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "amounts contributed and withdrawn per month, in yuan" });
  for (let value = 0; value <= ceiling + step / 2; value += step) {
    picture.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    picture.append(svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, yuan(value)));
  }
  months.forEach((m, i) => {
    const middle = left + slot * i + slot / 2;
    series.forEach(([key, css], j) => {
      const value = Number(m.total[key]);
      const x = middle - bar + j * bar;
      const rect = svg("rect", { class: css, x, y: y(value), width: bar - 2, height: y(0) - y(value) });
      rect.append(svg("title", {}, `${m.month} ${key}: ${yuan(value)} yuan`));
      picture.append(rect);
    });
    picture.append(svg("text", { x: middle, y: height - 10, "text-anchor": "middle" }, m.month));
  });
  const legend = svg("g", { class: "legend" });
  series.forEach(([key, css], j) => {
    legend.append(svg("rect", { class: css, x: left + j * 130, y: 6, width: 12, height: 12 }));
    legend.append(svg("text", { x: left + j * 130 + 18, y: 16 }, `${key} (yuan)`));
  });
  picture.append(legend);
  return picture;
}

function niceStep(rough) {
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= rough) ?? 10 * power;
}

// -- start -------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  for (const button of document.querySelectorAll("button[data-run]")) {
    button.addEventListener("click", () => run(button.dataset.run));
  }
  // Already signed in (a session cookie this script cannot read)? The first call says.
  api("/console/api/verification").then(showDashboard, () => {});
});
