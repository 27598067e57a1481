// The console page: one self-contained HTML document (no build step, no external
// URLs). Its script reads the token from `?token=` and sends it as a bearer token
// to the JSON API; every value from the node is inserted as text, never as HTML.

#include "actors/console.hpp"

namespace tender {

namespace {

constexpr const char* page_html = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tender console</title>
<link rel="icon" href="data:,">
<style>
:root { --bg:#f6f7f9; --fg:#1d2330; --muted:#6b7385; --line:#dde1e8; --card:#fff; --accent:#3557d4;
  --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; --info:#2b6cb0; --band:rgba(53,87,212,.13); }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:24px; padding:10px 20px; background:#151a26; color:#fff; }
header h1 { font-size:17px; margin:0; letter-spacing:.3px; }
header h1 span { color:#9fb3ff; font-weight:400; }
nav a { color:#c9d2e8; text-decoration:none; margin-right:16px; padding:4px 0; cursor:pointer; }
nav a.active { color:#fff; border-bottom:2px solid #9fb3ff; }
#status { margin-left:auto; font-size:12px; color:#9aa4bb; }
main { padding:16px 20px; max-width:1400px; margin:0 auto; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin-bottom:14px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:96px; }
.card b { display:block; font-size:20px; }
.card small { color:var(--muted); text-transform:uppercase; font-size:11px; letter-spacing:.4px; }
table { width:100%; border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f6; font-weight:600; font-size:12px; color:#434b5c; text-transform:uppercase; letter-spacing:.3px; }
tr.row:hover { background:#f1f4fb; cursor:pointer; }
tr.selected { background:#e6ecfc; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#e2e8f0; color:#2d3748; }
.s-done { background:#d4f2e0; color:var(--ok); } .s-running, .s-rescaling { background:#dbe8fb; color:var(--info); }
.s-failed, .s-refused { background:#fbdada; color:var(--bad); } .s-cancelled { background:#eee; color:#555; }
.s-profiling, .s-negotiating, .s-committed, .s-submitted { background:#fdf0d5; color:var(--warn); }
.v-won { color:var(--ok); font-weight:600; } .v-lost { color:var(--muted); } .v-bad { color:var(--bad); }
button { font:inherit; font-size:12px; padding:3px 10px; border-radius:6px; border:1px solid #b9c2d3; background:#fff; cursor:pointer; }
button:hover { border-color:var(--accent); color:var(--accent); }
button.danger { border-color:#e3a5a5; color:var(--bad); }
section.panel { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin-top:14px; }
section.panel h2 { font-size:15px; margin:0 0 8px; }
section.panel h3 { font-size:13px; margin:14px 0 6px; color:#434b5c; }
.why { background:#f3f6ff; border-left:3px solid var(--accent); padding:8px 12px; margin:8px 0; }
.kv { display:grid; grid-template-columns:max-content 1fr max-content 1fr; gap:2px 14px; }
.kv div:nth-child(odd) { color:var(--muted); }
.muted { color:var(--muted); }
.err { color:var(--bad); }
.dots span { display:inline-block; width:8px; height:8px; border-radius:50%; margin-right:2px; background:var(--ok); }
.dots span.breach { background:var(--bad); }
.bar { display:inline-block; height:8px; background:var(--bad); border-radius:4px; vertical-align:middle; margin-left:6px; }
.charts { display:flex; flex-wrap:wrap; gap:16px; }
svg.chart { background:#fbfcfe; border:1px solid var(--line); border-radius:6px; }
svg.chart text { font-size:11px; fill:#5b6475; }
form.weights label { display:inline-block; margin:4px 18px 4px 0; }
form.weights input { width:90px; font:inherit; padding:2px 6px; margin-left:6px; }
.hidden { display:none; }
</style>
</head>
<body>
<header>
  <h1>tender <span id="node">console</span></h1>
  <nav>
    <a data-tab="jobs" class="active">Jobs</a><a data-tab="providers">Providers</a><a data-tab="scaling">Scaling</a><a data-tab="weights">Scoring weights</a>
  </nav>
  <div id="status">connecting...</div>
</header>
<main>
  <div id="tab-jobs">
    <div class="cards" id="counts"></div>
    <table id="jobs"><thead><tr><th>Job</th><th>Name</th><th>User</th><th>State</th><th>Provider</th>
      <th class="num">Price</th><th>Submitted</th><th class="num">Ran</th><th></th></tr></thead><tbody></tbody></table>
    <section class="panel hidden" id="detail"></section>
  </div>
  <div id="tab-providers" class="hidden">
    <table id="providers"><thead><tr><th>Provider</th><th>Kind</th><th>State</th><th class="num">CPU free / total</th>
      <th class="num">Memory free / total</th><th class="num">Offers</th><th class="num">Wins</th><th>SLA history (latest right)</th>
      <th class="num">Breach probability</th><th></th></tr></thead><tbody></tbody></table>
  </div>
  <div id="tab-scaling" class="hidden">
    <table id="scaling"><thead><tr><th>At</th><th>Job</th><th>Need</th><th>Action</th><th>Outcome</th><th>By</th>
      <th>Held &rarr; granted</th><th class="num">Price change</th><th>Why</th></tr></thead><tbody></tbody></table>
  </div>
  <div id="tab-weights" class="hidden">
    <section class="panel">
      <h2>Offer-scoring weights</h2>
      <p class="muted">score = w_cost &middot; expected cost + w_deadline &middot; (1 &minus; P(deadline met)) &middot; expected cost
        + w_risk &middot; risk &middot; expected cost; lower wins. Changes apply to the auctions that rank offers after them.</p>
      <form class="weights" id="weights-form">
        <label>w_cost<input name="w_cost" type="number" step="any" min="0"></label>
        <label>w_deadline<input name="w_deadline" type="number" step="any" min="0"></label>
        <label>w_risk<input name="w_risk" type="number" step="any" min="0"></label>
        <label>deadline_target<input name="deadline_target" type="number" step="any" min="0" max="1"></label>
        <button type="submit">Apply</button> <span id="weights-msg"></span>
      </form>
    </section>
  </div>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
let selected = (location.hash.match(/job=([^&]+)/) || [])[1] || null, tab = "jobs", weightsLoaded = false;
if (selected) selected = decodeURIComponent(selected);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}
async function api(path, opts) {
  opts = opts || {};
  opts.headers = Object.assign({"Authorization": "Bearer " + token}, opts.headers || {});
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error && body.error.message) || ("HTTP " + r.status));
  return body;
}
const usd = v => v === null || v === undefined ? "" : "$" + Number(v).toFixed(v < 0.01 ? 6 : v < 1 ? 4 : 2);
const time = t => t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
const clock = t => t ? t.slice(11, 19) : "";
const bytes = b => { if (!b) return "0"; const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; while (b >= 1024 && i < 4) { b /= 1024; i++; } return b.toFixed(i ? 1 : 0) + " " + u[i]; };
const cores = c => (Math.round(c * 100) / 100) + "";
const final = s => ["done", "failed", "refused", "cancelled"].includes(s);
const badge = s => el("span", {class: "badge s-" + s, "data-state": s}, s);
function ran(j) {
  if (!j.started_at) return "";
  const a = Date.parse(j.started_at), b = j.finished_at ? Date.parse(j.finished_at) : Date.now();
  const s = Math.max(0, (b - a) / 1000);
  return s < 90 ? s.toFixed(1) + " s" : s < 5400 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
}
function setStatus(text, bad) { const s = document.getElementById("status"); s.textContent = text; s.className = bad ? "err" : ""; }

async function cancelJob(id, ev) {
  ev.stopPropagation();
  if (!confirm("Cancel job " + id + "?")) return;
  try { await api("/api/jobs/" + encodeURIComponent(id) + "/cancel", {method: "POST", body: "{}"}); refresh(); }
  catch (e) { alert("cancel failed: " + e.message); }
}

async function loadJobs() {
  const d = await api("/api/jobs?limit=200");
  const counts = document.getElementById("counts");
  counts.replaceChildren(el("div", {class: "card"}, el("b", {}, d.total), el("small", {}, "jobs")),
    ...Object.entries(d.counts).filter(([, n]) => n > 0).map(([s, n]) =>
      el("div", {class: "card"}, el("b", {}, n), el("small", {}, s))));
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...d.jobs.map(j => el("tr", {class: "row" + (j.id === selected ? " selected" : ""), "data-job-id": j.id,
      onclick: () => { selected = j.id; refresh(); }},
    el("td", {}, el("code", {}, j.id)), el("td", {}, j.name), el("td", {}, j.user), el("td", {}, badge(j.state)),
    el("td", {}, j.provider), el("td", {class: "num"}, j.price ? usd(j.price) : ""), el("td", {}, time(j.submitted_at)),
    el("td", {class: "num"}, ran(j)),
    el("td", {}, final(j.state) ? "" : el("button", {class: "danger", onclick: ev => cancelJob(j.id, ev)}, "Cancel")))));
  if (!d.jobs.length) body.append(el("tr", {}, el("td", {colspan: 9, class: "muted"}, "No jobs yet: submit one with `tender submit job.toml`.")));
}

function verdictClass(v) { return v === "won" ? "v-won" : v === "lost" || v.startsWith("superseded") ? "v-lost" : v === "candidate" ? "" : "v-bad"; }
const money = v => v === null || v === undefined ? "" : "$" + Number(v).toFixed(6);

function chart(title, samples, key, band, alloc, fmt) {
  const W = 560, H = 200, L = 56, R = 10, T = 22, B = 26;
  const xs = samples.map(s => s.t_s), ys = samples.map(s => s[key]);
  const tmax = Math.max(1, ...xs);
  let ymax = Math.max(1e-9, ...ys, alloc || 0, band ? band[1] : 0) * 1.1;
  const X = t => L + (W - L - R) * t / tmax, Y = v => H - B - (H - T - B) * v / ymax;
  const g = svg("svg", {class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-chart": key});
  g.append(svg("text", {x: L, y: 14, "font-weight": "600"}, title));
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    g.append(svg("line", {x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#e6e9ef"}));
    g.append(svg("text", {x: L - 4, y: Y(v) + 4, "text-anchor": "end"}, fmt(v)));
  }
  g.append(svg("text", {x: W - R, y: H - 6, "text-anchor": "end"}, tmax.toFixed(0) + " s"));
  g.append(svg("text", {x: L, y: H - 6}, "0 s"));
  if (band) {
    g.append(svg("rect", {x: L, width: W - L - R, y: Y(band[1]), height: Math.max(1, Y(band[0]) - Y(band[1])), fill: "rgba(53,87,212,.13)"}));
    g.append(svg("text", {x: W - R - 4, y: Y(band[1]) + 12, "text-anchor": "end"}, "predicted band"));
  }
  if (alloc) {
    g.append(svg("line", {x1: L, x2: W - R, y1: Y(alloc), y2: Y(alloc), stroke: "#c53030", "stroke-dasharray": "5 4"}));
    g.append(svg("text", {x: L + 4, y: Y(alloc) - 4, fill: "#c53030"}, "allocated " + fmt(alloc)));
  }
  if (samples.length)
    g.append(svg("polyline", {fill: "none", stroke: "#3557d4", "stroke-width": 1.8,
      points: samples.map(s => X(s.t_s).toFixed(1) + "," + Y(s[key]).toFixed(1)).join(" ")}));
  else g.append(svg("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no samples yet"));
  return g;
}

async function loadDetail() {
  const panel = document.getElementById("detail");
  if (!selected) { panel.classList.add("hidden"); return; }
  const id = selected;
  const [d, u] = await Promise.all([api("/api/jobs/" + encodeURIComponent(id)),
                                    api("/api/jobs/" + encodeURIComponent(id) + "/usage?points=300")]);
  if (id !== selected) return;
  const j = d.job, x = d.explanation;
  const kids = [el("h2", {}, "Job ", el("code", {}, j.id), " ", j.name, " ", badge(j.state),
    final(j.state) ? "" : el("button", {class: "danger", style: "margin-left:12px", onclick: ev => cancelJob(j.id, ev)}, "Cancel"))];
  kids.push(el("div", {class: "kv"},
    el("div", {}, "user"), el("div", {}, j.user), el("div", {}, "provider"), el("div", {}, j.provider || "-"),
    el("div", {}, "submitted"), el("div", {}, time(j.submitted_at)), el("div", {}, "price"), el("div", {}, usd(j.price)),
    el("div", {}, "started"), el("div", {}, time(j.started_at) || "-"), el("div", {}, "finished"), el("div", {}, time(j.finished_at) || "-"),
    el("div", {}, "exit code"), el("div", {}, j.exit_code === null ? "-" : j.exit_code), el("div", {}, "reason"), el("div", {}, j.reason || "-")));
  if (x) {
    kids.push(el("h3", {}, "Auction: " + (x.protocol || "-") + ", " + x.rounds + " round(s)"));
    if (x.why) kids.push(el("div", {class: "why"}, x.why));
    const rounds = {};
    for (const o of x.offers) (rounds[o.round] = rounds[o.round] || []).push(o);
    for (const [r, offers] of Object.entries(rounds)) {
      kids.push(el("table", {"data-round": r}, el("thead", {}, el("tr", {},
        ...["Round " + r + ": provider", "Price", "Rate / h", "Expected cost", "P(deadline)", "Risk", "Cost term", "Deadline term", "Risk term", "Score", "Verdict"]
          .map((h, i) => el("th", {class: i && i < 10 ? "num" : ""}, h)))),
        el("tbody", {}, ...offers.map(o => { const s = o.score || {}; return el("tr", {},
          el("td", {}, o.provider, o.instance_type ? el("span", {class: "muted"}, " " + o.instance_type) : ""),
          el("td", {class: "num"}, usd(o.price)), el("td", {class: "num"}, usd(o.rate_per_hour)),
          el("td", {class: "num"}, money(s.expected_cost)), el("td", {class: "num"}, s.p_deadline === undefined ? "" : s.p_deadline.toFixed(3)),
          el("td", {class: "num"}, s.risk === undefined ? "" : s.risk.toFixed(3)), el("td", {class: "num"}, money(s.cost_term)),
          el("td", {class: "num"}, money(s.deadline_term)), el("td", {class: "num"}, money(s.risk_term)),
          el("td", {class: "num"}, el("b", {}, money(s.risk_adjusted))), el("td", {class: verdictClass(o.verdict)}, o.verdict)); }))));
    }
    if (x.declines && x.declines.length)
      kids.push(el("h3", {}, "Declines"), el("ul", {}, ...x.declines.map(dn => el("li", {}, "round " + dn.round + ": " + dn.provider + ": " + dn.reason))));
    if (x.scaling && x.scaling.length)
      kids.push(el("h3", {}, "Scaling decisions"), el("ul", {}, ...x.scaling.map(s => el("li", {}, clock(s.at) + " " + s.need + " -> " + s.action + ": " + s.outcome + (s.by ? " by " + s.by : "") + (s.reason ? " (" + s.reason + ")" : "")))));
  }
  kids.push(el("h3", {}, "Usage against the predicted band" + (u.total_samples ? " (" + u.total_samples + " samples)" : "")));
  const b = u.band;
  kids.push(el("div", {class: "charts"},
    chart("CPU (cores)", u.samples, "cpu", b ? [b.cpu_lo, b.cpu_hi] : null, u.allocated ? u.allocated.cpu : 0, cores),
    chart("Memory (RSS)", u.samples, "rss_bytes", b ? [b.mem_lo_bytes, b.mem_hi_bytes] : null, u.allocated ? u.allocated.memory_bytes : 0, bytes)));
  panel.replaceChildren(...kids);
  panel.classList.remove("hidden");
}

async function toggleProvider(name, drain) {
  try { await api("/api/providers/" + encodeURIComponent(name) + (drain ? "/drain" : "/enable"), {method: "POST"}); refresh(); }
  catch (e) { alert((drain ? "drain" : "enable") + " failed: " + e.message); }
}

async function loadProviders() {
  const d = await api("/api/providers");
  const body = document.querySelector("#providers tbody");
  body.replaceChildren(...d.providers.map(p => el("tr", {"data-provider": p.name},
    el("td", {}, el("b", {}, p.name), p.remote ? el("span", {class: "muted"}, " remote") : ""), el("td", {}, p.kind),
    el("td", {}, p.drained ? el("span", {class: "badge s-failed"}, "drained") : p.connected ? el("span", {class: "badge s-done"}, "active") : el("span", {class: "badge"}, "disconnected")),
    el("td", {class: "num"}, cores(p.free.cpu) + " / " + cores(p.capacity.cpu)),
    el("td", {class: "num"}, bytes(p.free.memory_bytes) + " / " + bytes(p.capacity.memory_bytes)),
    el("td", {class: "num"}, p.offers), el("td", {class: "num"}, p.wins),
    el("td", {}, el("span", {class: "dots"}, ...p.sla.recent.map(e => el("span", {class: e.breach ? "breach" : "", title: e.kind + " " + time(e.at)}))),
      el("span", {class: "muted"}, " " + p.sla.kept + " kept, " + p.sla.breaches + " broken")),
    el("td", {class: "num"}, (p.risk * 100).toFixed(1) + " %", el("span", {class: "bar", style: "width:" + Math.round(p.risk * 60) + "px"})),
    el("td", {}, p.drained ? el("button", {onclick: () => toggleProvider(p.name, false)}, "Re-enable")
                           : el("button", {class: "danger", onclick: () => toggleProvider(p.name, true)}, "Drain")))));
}

async function loadScaling() {
  const d = await api("/api/scaling?limit=200");
  const body = document.querySelector("#scaling tbody");
  const res = r => cores(r.cpu) + " cores, " + bytes(r.memory_bytes);
  body.replaceChildren(...d.scaling.slice().reverse().map(s => el("tr", {},
    el("td", {}, time(s.at)), el("td", {}, el("code", {}, s.job_id)), el("td", {}, s.need), el("td", {}, s.action),
    el("td", {}, s.outcome), el("td", {}, s.by), el("td", {}, s.held ? res(s.held) + " -> " + res(s.granted) : ""),
    el("td", {class: "num"}, s.price_delta === undefined ? "" : usd(s.price_delta)), el("td", {class: "muted"}, s.reason))));
  if (!d.scaling.length) body.append(el("tr", {}, el("td", {colspan: 9, class: "muted"}, "No scaling decisions yet.")));
}

async function loadWeights(force) {
  if (weightsLoaded && !force) return;
  const d = await api("/api/weights");
  const f = document.getElementById("weights-form");
  for (const [k, v] of Object.entries(d.weights)) f.elements[k].value = v;
  weightsLoaded = true;
}
document.getElementById("weights-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const f = ev.target, body = {}, msg = document.getElementById("weights-msg");
  for (const k of ["w_cost", "w_deadline", "w_risk", "deadline_target"]) body[k] = Number(f.elements[k].value);
  try {
    await api("/api/weights", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    msg.textContent = "applied at " + new Date().toLocaleTimeString(); msg.className = "";
    loadWeights(true);
  } catch (e) { msg.textContent = e.message; msg.className = "err"; }
});

for (const a of document.querySelectorAll("nav a")) a.addEventListener("click", () => {
  tab = a.dataset.tab;
  for (const b of document.querySelectorAll("nav a")) b.classList.toggle("active", b === a);
  for (const t of ["jobs", "providers", "scaling", "weights"]) document.getElementById("tab-" + t).classList.toggle("hidden", t !== tab);
  refresh();
});

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    if (tab === "jobs") { await loadJobs(); await loadDetail(); }
    else if (tab === "providers") await loadProviders();
    else if (tab === "scaling") await loadScaling();
    else if (tab === "weights") await loadWeights(false);
    setStatus("updated " + new Date().toLocaleTimeString());
  } catch (e) { setStatus(e.message, true); }
  busy = false;
}
api("/api").then(d => { document.getElementById("node").textContent = d.node; }).catch(() => {});
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";

} // namespace

const std::string& console_page() {
  static const std::string page = page_html;
  return page;
}

} // namespace tender
