// The merchantagg dashboard: every figure comes from the API (openapi.yaml), with the token the
// user gave, kept in this tab's sessionStorage only. Text from the data is always set with
// textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "className") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};

const state = {
  token: null, me: null, merchant: null,
  from: null, to: null, compare: "previous_year", grain: "week",
  statuses: ["created", "accepted", "delivered", "cancelled", "returned"],
  lists: {}, abc: { page: 1, cls: "" },
};

// ---- the API ----------------------------------------------------------------------------

class APIError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

const explain = {
  400: "The request was refused",
  401: "The token is not valid or has expired; log in again",
  403: "This token may not see these figures",
  429: "Too many requests; wait a moment",
  503: "The service is busy; retry in a few seconds",
};

async function api(path, params = {}, opts = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  if (state.merchant !== null && opts.scoped !== false) q.set("merchant_id", state.merchant);
  let res;
  try {
    res = await fetch(path + (q.toString() ? "?" + q : ""), { headers: { Authorization: "Bearer " + state.token } });
  } catch (e) {
    throw new APIError(0, "The API cannot be reached (" + e.message + ")");
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { const p = await res.json(); detail = p.detail || p.title || detail; } catch (_) { /* not JSON */ }
    throw new APIError(res.status, (explain[res.status] || "Error " + res.status) + ": " + detail);
  }
  return { body: await res.json(), headers: res.headers };
}

function ranged(extra = {}) {
  const all = state.statuses.length === 5;
  return Object.assign({ from: state.from, to: state.to, status: all ? "" : state.statuses.join(",") }, extra);
}

function report(err) {
  const box = el("div", { className: "error", text: err.message });
  $("#messages").append(box);
  if (err.status === 401) showLogin();
}

// ---- formatting -------------------------------------------------------------------------

const num = new Intl.NumberFormat("en-US");
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmt = {
  int: (v) => (v === null ? "—" : num.format(v)),
  money: (v) => (v === null ? "—" : money.format(Number(v))),
  pct: (v) => (v === null ? "—" : (v * 100).toFixed(2) + "%"),
  hours: (v) => (v === null ? "—" : v.toFixed(1) + " h"),
  ratio: (v) => (v === null ? "—" : v.toFixed(2)),
};

function iso(d) { return d.toISOString().slice(0, 10); }
function today() { const n = new Date(); return new Date(Date.UTC(n.getFullYear(), n.getMonth(), n.getDate())); }
function addDays(d, n) { const x = new Date(d); x.setUTCDate(x.getUTCDate() + n); return x; }

function preset(p) {
  const t = today();
  let from = t;
  if (p === "month") from = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));
  else if (p === "quarter") from = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() - (t.getUTCMonth() % 3), 1));
  else if (p === "year") from = new Date(Date.UTC(t.getUTCFullYear(), 0, 1));
  else from = addDays(t, 1 - Number(p));
  return [iso(from), iso(t)];
}

// ---- the summary ------------------------------------------------------------------------

const kpis = [
  ["orders", "Orders", fmt.int], ["gmv", "Turnover (GMV)", fmt.money], ["revenue", "Revenue", fmt.money],
  ["aov", "Average check", fmt.money], ["items", "Items", fmt.int], ["delivered", "Delivered", fmt.int],
  ["cancel_rate", "Cancelled", fmt.pct], ["return_rate", "Returned", fmt.pct],
  ["avg_delivery_hours", "Delivery time", fmt.hours],
];
const customerKpis = [
  ["customers", "Customers", fmt.int], ["new_customers", "New customers", fmt.int],
  ["returning_customers", "Returning", fmt.int], ["repeat_rate", "Repeat rate", fmt.pct],
  ["orders_per_customer", "Orders per customer", fmt.ratio], ["gmv_per_customer", "GMV per customer", fmt.money],
];

function card(key, label, value, format, change) {
  const c = el("div", { className: "card", dataset: { key, value: value === null ? "" : String(value) } },
    el("div", { className: "label", text: label }), el("div", { className: "value", text: format(value) }));
  if (change !== undefined) {
    const cls = change === null ? "change" : change >= 0 ? "change up" : "change down";
    c.append(el("div", { className: cls, text: change === null ? "no comparison" : (change >= 0 ? "+" : "") + (change * 100).toFixed(1) + "%" }));
  }
  return c;
}

async function loadSummary() {
  const { body, headers } = await api("/v1/summary", ranged({ compare: state.compare }));
  $("#kpis").replaceChildren(...kpis.map(([k, l, f]) => card(k, l, body.metrics[k], f, body.change[k])));
  $("#customers").replaceChildren(...customerKpis.map(([k, l, f]) => card(k, l, body.customers[k], f, body.change[k])));
  const asOf = headers.get("X-Data-As-Of");
  const a = $("#asof");
  if (!asOf) {
    a.textContent = "no data refreshed yet";
    a.className = "stale";
  } else {
    const lag = (Date.now() - Date.parse(asOf)) / 1000;
    a.textContent = "data as of " + new Date(asOf).toLocaleString() + (lag > 900 ? " (lagging " + Math.round(lag / 60) + " min)" : "");
    a.className = lag > 900 ? "stale" : "";
    a.dataset.asof = asOf;
  }
}

// ---- the series -------------------------------------------------------------------------

let chart = null;

async function loadSeries() {
  const { body } = await api("/v1/timeseries", ranged({ grain: state.grain }));
  const xs = body.points.map((p) => Date.parse(p.period) / 1000);
  const gmv = body.points.map((p) => Number(p.metrics.gmv));
  const orders = body.points.map((p) => p.metrics.orders);
  const box = $("#chart");
  box.dataset.points = String(body.points.length);
  if (chart) chart.destroy();
  chart = new uPlot({
    width: Math.max(400, box.clientWidth || 900), height: 260,
    series: [{}, { label: "GMV", stroke: "#4f86c6", width: 2, scale: "gmv" },
             { label: "Orders", stroke: "#e07b39", width: 1, scale: "orders" }],
    axes: [{}, { scale: "gmv", size: 90 }, { scale: "orders", side: 1, size: 60, grid: { show: false } }],
  }, [xs, gmv, orders], box);
}

// ---- breakdown tables -------------------------------------------------------------------

const listCols = [
  ["orders", "Orders", (m) => fmt.int(m.orders)], ["gmv", "GMV", (m) => fmt.money(m.gmv)],
  ["revenue", "Revenue", (m) => fmt.money(m.revenue)], ["aov", "Avg check", (m) => fmt.money(m.aov)],
  ["cancel_rate", "Cancelled", (m) => fmt.pct(m.cancel_rate)], ["return_rate", "Returned", (m) => fmt.pct(m.return_rate)],
];
const pageSize = 10;

function header(cols, sort, onSort) {
  const key = sort.replace(/^-/, "");
  return el("tr", {}, ...cols.map(([k, label]) => {
    const th = el("th", { text: label, dataset: { sort: k } });
    if (k === key) th.className = sort.startsWith("-") ? "sorted" : "sorted asc";
    if (k !== "") th.addEventListener("click", () => onSort(k === key && sort.startsWith("-") ? k : "-" + k));
    return th;
  }));
}

function pager(page, total, size, go) {
  const pages = Math.max(1, Math.ceil(total / size));
  const prev = el("button", { type: "button", text: "‹ prev" });
  const next = el("button", { type: "button", text: "next ›" });
  prev.disabled = page <= 1;
  next.disabled = page >= pages;
  prev.addEventListener("click", () => go(page - 1));
  next.addEventListener("click", () => go(page + 1));
  return el("div", { className: "pager" }, prev, el("span", { text: `page ${page} of ${pages} (${num.format(total)} rows)` }), next);
}

async function loadList(box) {
  const dim = box.dataset.dimension;
  const st = state.lists[dim] || (state.lists[dim] = { sort: "-gmv", page: 1 });
  const { body } = await api("/v1/breakdown/" + dim, ranged({ sort: st.sort, page: st.page, page_size: pageSize }));
  const cols = [["name", "Name"], ["share", "Share"], ...listCols];
  const rerun = () => loadList(box).catch(report);
  const table = el("table", {}, header(cols, st.sort, (s) => { st.sort = s; st.page = 1; rerun(); }));
  for (const r of body.rows) {
    const bar = el("span", { className: "bar" });
    bar.style.width = Math.round((r.share || 0) * 100) + "px";
    table.append(el("tr", { dataset: { key: r.key } },
      el("td", { className: "name", text: r.name }),
      el("td", {}, bar, document.createTextNode(fmt.pct(r.share))),
      ...listCols.map(([k, , f]) => el("td", { dataset: { col: k }, text: f(r.metrics) }))));
  }
  box.dataset.total = String(body.total);
  box.replaceChildren(table, pager(st.page, body.total, pageSize, (p) => { st.page = p; rerun(); }));
}

// ---- ABC --------------------------------------------------------------------------------

async function loadABC() {
  const { body } = await api("/v1/abc", ranged({ class: state.abc.cls, page: state.abc.page, page_size: pageSize }));
  $("#abc-classes").replaceChildren(...body.classes.map((c) =>
    card("class-" + c.class, "Class " + c.class + ": " + num.format(c.products) + " products", c.value, fmt.money)));
  const table = el("table", {}, el("tr", {}, ...["Rank", "Product", "SKU", "Value", "Share", "Cumulative", "Class"].map((h) => el("th", { text: h }))));
  for (const p of body.products) {
    table.append(el("tr", { dataset: { product: String(p.product_id), class: p.class } },
      el("td", { text: String(p.rank) }), el("td", { className: "name", text: p.name }), el("td", { text: p.sku }),
      el("td", { text: fmt.money(p.value) }), el("td", { text: fmt.pct(p.share) }),
      el("td", { text: fmt.pct(p.cumulative_share) }), el("td", { text: p.class })));
  }
  $("#abc").replaceChildren(table, pager(state.abc.page, body.total, pageSize, (p) => { state.abc.page = p; loadABC().catch(report); }));
}

// ---- cohorts ----------------------------------------------------------------------------

async function loadCohorts() {
  const { body } = await api("/v1/customers/cohorts", ranged());
  const width = Math.max(0, ...body.cohorts.map((c) => c.retention.length));
  const table = el("table", {}, el("tr", {}, el("th", { text: "Cohort" }), el("th", { text: "Customers" }),
    ...Array.from({ length: width }, (_, k) => el("th", { text: "+" + k }))));
  for (const c of body.cohorts) {
    const cells = c.retention.map((s) => {
      const td = el("td", { text: Math.round(s * 100) + "%" });
      td.style.backgroundColor = `rgba(79, 134, 198, ${Math.min(1, s * 1.5).toFixed(2)})`;
      return td;
    });
    table.append(el("tr", {}, el("td", { text: c.cohort.slice(0, 7) }), el("td", { text: fmt.int(c.customers) }), ...cells));
  }
  $("#cohorts").replaceChildren(table);
}

// ---- wiring -----------------------------------------------------------------------------

async function refreshAll() {
  $("#messages").replaceChildren();
  const jobs = [loadSummary(), loadSeries(), loadABC(), loadCohorts(),
    ...[...document.querySelectorAll(".breakdown")].map(loadList)];
  const results = await Promise.allSettled(jobs);
  const seen = new Set();
  for (const r of results) {
    if (r.status === "rejected" && !seen.has(r.reason.message)) {
      seen.add(r.reason.message);
      report(r.reason);
    }
  }
  document.body.dataset.loaded = String(Date.now());
}

function showLogin() {
  sessionStorage.removeItem("merchantagg-token");
  $("#board").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
}

async function start() {
  // A token in the fragment (the demo's link) moves to sessionStorage and leaves the address
  // bar; from and to there set the range.
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("token")) {
    sessionStorage.setItem("merchantagg-token", frag.get("token"));
    frag.delete("token");
    history.replaceState(null, "", location.pathname + location.search + (frag.toString() ? "#" + frag : ""));
  }
  state.token = sessionStorage.getItem("merchantagg-token");
  if (!state.token) {
    showLogin();
    return;
  }
  [state.from, state.to] = frag.get("from") && frag.get("to") ? [frag.get("from"), frag.get("to")] : preset("30");
  $("#from").value = state.from;
  $("#to").value = state.to;
  try {
    const { body: me } = await api("/v1/me", {}, { scoped: false });
    state.me = me;
    if (me.role === "admin") {
      const { body: list } = await api("/v1/admin/merchants", { page_size: 500 }, { scoped: false });
      const pick = $("#merchant-pick");
      pick.replaceChildren(...list.merchants.map((m) => el("option", { value: String(m.id), text: m.name + " (" + m.id + ")" })));
      pick.hidden = false;
      state.merchant = frag.get("merchant") || (list.merchants[0] && String(list.merchants[0].id)) || null;
      if (state.merchant) pick.value = state.merchant;
      $("#who").textContent = "admin";
    } else {
      $("#who").textContent = (me.name || "merchant") + " (" + me.merchant_id + ")";
    }
  } catch (e) {
    report(e);
    return;
  }
  $("#login").hidden = true;
  $("#board").hidden = false;
  $("#logout").hidden = false;
  await refreshAll();
}

function wire() {
  $("#login-button").addEventListener("click", () => {
    sessionStorage.setItem("merchantagg-token", $("#token-input").value.trim());
    $("#messages").replaceChildren();
    start();
  });
  $("#logout").addEventListener("click", () => { showLogin(); $("#messages").replaceChildren(); });
  for (const b of document.querySelectorAll("#presets button")) {
    b.addEventListener("click", () => {
      [state.from, state.to] = preset(b.dataset.preset);
      $("#from").value = state.from;
      $("#to").value = state.to;
      refreshAll();
    });
  }
  for (const id of ["#from", "#to"]) {
    $(id).addEventListener("change", () => {
      if (!$("#from").value || !$("#to").value) return;
      state.from = $("#from").value;
      state.to = $("#to").value;
      refreshAll();
    });
  }
  $("#compare").addEventListener("change", () => { state.compare = $("#compare").value; loadSummary().catch(report); });
  $("#statuses").addEventListener("change", () => {
    state.statuses = [...document.querySelectorAll("#statuses input:checked")].map((i) => i.value);
    refreshAll();
  });
  $("#grain").addEventListener("change", () => { state.grain = $("#grain").value; loadSeries().catch(report); });
  $("#abc-class").addEventListener("change", () => { state.abc.cls = $("#abc-class").value; state.abc.page = 1; loadABC().catch(report); });
  $("#merchant-pick").addEventListener("change", () => { state.merchant = $("#merchant-pick").value; state.lists = {}; refreshAll(); });
}

document.addEventListener("DOMContentLoaded", () => { wire(); start(); });
