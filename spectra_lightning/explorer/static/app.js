// The explorer's page: plain JavaScript on <canvas>, talking to the JSON API of explore.py.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = { decoded: "#1f5fbf", base: "#aaaaaa", overlay: "#e07b00", real: "#555555", recon: "#d62728" };
// viridis, 9 stops
const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

// Everything the page knows; exposed for people poking around in the console (and for the browser test).
const state = window.explorer = {
  info: null, values: [], xlim: null, decoded: null, overlay: null, version: 0, latency: [],
  inflight: false, pending: false, scatter: null, ready: false,
};

async function api(route, params = {}) {
  const r = await fetch(`/api/${route}?` + new URLSearchParams(params));
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function setStatus(text) { $("status").textContent = text; }

// ---- plotting -------------------------------------------------------------------------------
function niceTicks(lo, hi, n) {
  const span = hi - lo || 1, raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) out.push(+t.toPrecision(12));
  return out;
}

function extent(arrays, pad = 0.04) {
  let lo = Infinity, hi = -Infinity;
  for (const a of arrays) for (const v of a) if (v !== null && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!isFinite(lo)) return [0, 1];
  const d = (hi - lo) || Math.abs(hi) || 1;
  return [lo - pad * d, hi + pad * d];
}

// Axes plus a transform from data to canvas pixels; returns it so interactions can invert it.
function axes(canvas, xlim, ylim, xlabel, ylabel) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const m = { l: 52, r: 10, t: 10, b: 34 };
  const tx = {
    m, w, h, xlim, ylim,
    x: (v) => m.l + (v - xlim[0]) / (xlim[1] - xlim[0]) * (w - m.l - m.r),
    y: (v) => h - m.b - (v - ylim[0]) / (ylim[1] - ylim[0]) * (h - m.t - m.b),
    invx: (px) => xlim[0] + (px - m.l) / (w - m.l - m.r) * (xlim[1] - xlim[0]),
  };
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#444"; ctx.font = "11px system-ui"; ctx.lineWidth = 1;
  ctx.strokeRect(m.l, m.t, w - m.l - m.r, h - m.t - m.b);
  ctx.textAlign = "center";
  for (const t of niceTicks(xlim[0], xlim[1], Math.max(2, Math.floor(w / 90)))) {
    ctx.fillText(t, tx.x(t), h - m.b + 13);
    ctx.beginPath(); ctx.moveTo(tx.x(t), h - m.b); ctx.lineTo(tx.x(t), h - m.b + 3); ctx.stroke();
  }
  ctx.fillText(xlabel, m.l + (w - m.l - m.r) / 2, h - 4);
  ctx.textAlign = "right";
  for (const t of niceTicks(ylim[0], ylim[1], Math.max(2, Math.floor(h / 50)))) {
    ctx.fillText(t, m.l - 5, tx.y(t) + 4);
    ctx.beginPath(); ctx.moveTo(m.l - 3, tx.y(t)); ctx.lineTo(m.l, tx.y(t)); ctx.stroke();
  }
  ctx.save(); ctx.translate(12, m.t + (h - m.t - m.b) / 2); ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center"; ctx.fillText(ylabel, 0, 0); ctx.restore();
  ctx.save(); ctx.beginPath(); ctx.rect(m.l, m.t, w - m.l - m.r, h - m.t - m.b); ctx.clip();
  return { ctx, tx };
}

function line(ctx, tx, xs, ys, color, width = 1.2) {
  ctx.strokeStyle = color; ctx.lineWidth = width; ctx.beginPath();
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    if (ys[i] === null) { pen = false; continue; }
    const px = tx.x(xs[i]), py = tx.y(ys[i]);
    if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    pen = true;
  }
  ctx.stroke();
}

function colormap(v, lo, hi) {
  if (v === null) return "#cccccc";
  const t = Math.min(1, Math.max(0, (v - lo) / ((hi - lo) || 1))) * (VIRIDIS.length - 1);
  return VIRIDIS[Math.round(t)];
}

// ---- the decoded spectrum ------------------------------------------------------------------
function drawSpectrum(selection) {
  const d = state.decoded, c = $("spectrum");
  if (!d) return;
  const series = [d.base, d.flux];
  if (state.overlay) series.push(state.overlay.flux);
  const xlim = state.xlim || [d.wave[0], d.wave[d.wave.length - 1]];
  const { ctx, tx } = axes(c, xlim, extent(series), "wavelength (Å)", "normalised flux");
  line(ctx, tx, d.wave, d.base, COLORS.base, 1);
  if (state.overlay) line(ctx, tx, state.overlay.wave, state.overlay.flux, COLORS.overlay, 1);
  line(ctx, tx, d.wave, d.flux, COLORS.decoded, 1.4);
  if (selection) { ctx.fillStyle = "rgba(31,95,191,0.12)"; ctx.fillRect(selection[0], 0, selection[1] - selection[0], tx.h); }
  ctx.restore();
  c._tx = tx;
}

function windowParams() {
  const p = { n: Math.round($("spectrum").clientWidth) };
  if (state.xlim) { p.lo = state.xlim[0]; p.hi = state.xlim[1]; }
  return p;
}

// One request in flight at a time; a slider moved meanwhile sends its latest value when it returns.
async function refresh() {
  if (state.inflight) { state.pending = true; return; }
  state.inflight = true;
  const t0 = performance.now();
  try {
    state.decoded = await api("decode", { z: state.values.join(","), ...windowParams() });
    if (state.overlay) state.overlay = { ...state.overlay, ...(await overlayCurve(state.overlay.index)) };
    drawSpectrum();
    const ms = performance.now() - t0;
    state.latency.push(ms);
    $("latency").textContent = `redrawn in ${ms.toFixed(0)} ms`;
    state.version += 1;
    $("spectrum").dataset.version = state.version;
    if (state.scatter) drawScatter();  // moves the slider marker
  } catch (e) { setStatus(`error: ${e.message}`); }
  state.inflight = false;
  if (state.pending) { state.pending = false; refresh(); } else scheduleNeighbours();
}

let neighbourTimer = null;
function scheduleNeighbours() { clearTimeout(neighbourTimer); neighbourTimer = setTimeout(loadNeighbours, 150); }

async function overlayCurve(index) {
  const s = await api("spectrum", { index, ...windowParams() });
  return { wave: s.wave, flux: s.flux };
}

// ---- sliders ---------------------------------------------------------------------------------
// "teff-like · 2.03 nat": the label this node carries best, when it is the best node for it
function nodeTag(node) {
  let best = null;
  for (const [label, entry] of Object.entries(state.info.mi)) {
    const v = entry.values[node];
    if (entry.best_node === node && v >= 0.3 && (!best || v > best[1])) best = [label, v];
  }
  return best ? `${best[0]}-like · ${best[1].toFixed(2)} nat` : "";
}

function buildSliders() {
  const box = $("sliders"), { nodes, range } = state.info;
  box.innerHTML = "";
  nodes.forEach((node, j) => {
    const lo = range.p1[j], hi = range.p99[j], mid = range.median[j];
    const div = document.createElement("div");
    div.className = "slider";
    div.innerHTML = `<label><span>node ${node} <span class="tag">${nodeTag(node)}</span></span>` +
      `<output id="v${j}">${mid.toFixed(3)}</output></label>` +
      `<input type="range" id="s${j}" data-node="${node}" min="${lo}" max="${hi}" step="${(hi - lo) / 500 || 1e-6}" value="${mid}">`;
    box.appendChild(div);
    div.querySelector("input").addEventListener("input", (ev) => {
      state.values[j] = +ev.target.value;
      $(`v${j}`).textContent = state.values[j].toFixed(3);
      refresh();
    });
  });
  state.values = range.median.slice();
}

$("reset").addEventListener("click", () => {
  state.values = state.info.range.median.slice();
  state.values.forEach((v, j) => { $(`s${j}`).value = v; $(`v${j}`).textContent = v.toFixed(3); });
  refresh();
});

// ---- zoom ------------------------------------------------------------------------------------
(function zoom() {
  const c = $("spectrum");
  let start = null;
  const px = (ev) => ev.clientX - c.getBoundingClientRect().left;
  c.addEventListener("mousedown", (ev) => { start = px(ev); });
  c.addEventListener("mousemove", (ev) => { if (start !== null) drawSpectrum([Math.min(start, px(ev)), Math.max(start, px(ev))]); });
  c.addEventListener("mouseup", (ev) => {
    const end = px(ev), tx = c._tx;
    if (start !== null && tx && Math.abs(end - start) > 5) {
      const a = tx.invx(Math.min(start, end)), b = tx.invx(Math.max(start, end));
      state.xlim = [a, b];
      refresh();
    } else drawSpectrum();
    start = null;
  });
  c.addEventListener("dblclick", () => { state.xlim = null; refresh(); });
})();

function buildPresets() {
  const bar = $("presets");
  for (const p of state.info.presets) {
    const b = document.createElement("button");
    b.textContent = p.name; b.dataset.lo = p.lo; b.dataset.hi = p.hi;
    bar.appendChild(b);
  }
  bar.addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    state.xlim = b.dataset.lo === "" ? null : [+b.dataset.lo, +b.dataset.hi];
    refresh();
  });
}

// ---- retrieval -------------------------------------------------------------------------------
const NEIGHBOUR_COLUMNS = ["id", "teff", "logg", "feh", "rv", "distance"];
const SHORT = { distance: "dist" };

async function loadNeighbours() {
  const { neighbours } = await api("neighbours", { z: state.values.join(","), k: 10 });
  const cols = NEIGHBOUR_COLUMNS.filter((c) => neighbours.some((r) => r[c] !== undefined));
  const fmt = (v) => (typeof v === "number" ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : (v ?? ""));
  $("neighbours").tHead.innerHTML = `<tr>${cols.map((c) => `<th>${SHORT[c] || c}</th>`).join("")}</tr>`;
  const body = $("neighbours").tBodies[0];
  body.innerHTML = "";
  for (const r of neighbours) {
    const tr = document.createElement("tr");
    tr.innerHTML = cols.map((c) => `<td>${fmt(r[c])}</td>`).join("");
    tr.title = [r.object, r.instrument].filter(Boolean).join(" · ");
    tr.addEventListener("click", () => showOverlay(r));
    body.appendChild(tr);
  }
  state.neighbours = neighbours;
  if (state.shown === undefined && neighbours.length && state.info.has_store) showReal(neighbours[0].index);
}

async function showOverlay(row) {
  if (!state.info.has_store) { setStatus("no store: restart with --store to overlay real spectra"); return; }
  state.overlay = { index: row.index, ...(await overlayCurve(row.index)) };
  $("overlay-key").textContent = `stored ${row.id}`;
  drawSpectrum();
}

// ---- scatter and the clicked spectrum -------------------------------------------------------
function buildScatterControls() {
  const { nodes, latent_dim, colors } = state.info;
  const order = nodes.concat([...Array(latent_dim).keys()].filter((i) => !nodes.includes(i)));
  for (const [id, pick] of [["sx", 0], ["sy", 1]]) {
    $(id).innerHTML = order.map((i) => `<option value="${i}">node ${i}</option>`).join("");
    $(id).value = order[Math.min(pick, order.length - 1)];
    $(id).addEventListener("change", loadScatter);
  }
  const preferred = ["rv", "teff"].filter((c) => colors.includes(c));
  $("sc").innerHTML = `<option value="">(none)</option>` + colors.map((c) => `<option>${c}</option>`).join("");
  $("sc").value = preferred[0] ? (nodeTag(+$("sx").value).startsWith("rv") ? "rv" : preferred[preferred.length - 1]) : "";
  $("sc").addEventListener("change", loadScatter);
}

async function loadScatter() {
  const s = await api("scatter", { x: $("sx").value, y: $("sy").value, color: $("sc").value });
  state.scatter = s;
  drawScatter();
}

function drawScatter() {
  const s = state.scatter, c = $("scatter");
  const cl = s.c ? extent([s.c], 0) : null;
  const { ctx, tx } = axes(c, extent([s.x]), extent([s.y]), `node ${$("sx").value}`, `node ${$("sy").value}`);
  for (let i = 0; i < s.x.length; i++) {
    if (s.x[i] === null || s.y[i] === null) continue;
    ctx.fillStyle = cl ? colormap(s.c[i], cl[0], cl[1]) : "#1f5fbf";
    ctx.fillRect(tx.x(s.x[i]) - 1.5, tx.y(s.y[i]) - 1.5, 3, 3);
  }
  ctx.restore();
  c._tx = tx;
  $("crange").textContent = cl ? `${$("sc").value}: ${cl[0].toPrecision(4)} (purple) … ${cl[1].toPrecision(4)} (yellow)` : "";
  drawMarker();
}

// The sliders' position, when both scatter axes are sliders.
function drawMarker() {
  const c = $("scatter"), tx = c._tx;
  if (!tx || !state.scatter) return;
  const jx = state.info.nodes.indexOf(+$("sx").value), jy = state.info.nodes.indexOf(+$("sy").value);
  if (jx < 0 || jy < 0) return;
  const ctx = c.getContext("2d"), x = tx.x(state.values[jx]), y = tx.y(state.values[jy]);
  ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2; ctx.beginPath();
  ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y); ctx.moveTo(x, y - 6); ctx.lineTo(x, y + 6); ctx.stroke();
}

$("scatter").addEventListener("click", async (ev) => {
  const c = $("scatter"), tx = c._tx, s = state.scatter;
  if (!tx || !s) return;
  const r = c.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
  let best = -1, bestD = 100;  // within 10 px
  for (let i = 0; i < s.x.length; i++) {
    if (s.x[i] === null || s.y[i] === null) continue;
    const d = (tx.x(s.x[i]) - px) ** 2 + (tx.y(s.y[i]) - py) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  if (best >= 0) showReal(s.index[best]);
});

async function showReal(index) {
  if (!state.info.has_store) { setStatus("no store: restart with --store to see real spectra"); return; }
  state.shown = index;
  const s = await api("spectrum", { index, n: Math.round($("real").clientWidth) });
  const { ctx, tx } = axes($("real"), [s.wave[0], s.wave[s.wave.length - 1]], extent([s.flux, s.recon]),
    "wavelength (Å)", "flux");
  line(ctx, tx, s.wave, s.flux, COLORS.real, 1);
  line(ctx, tx, s.wave, s.recon, COLORS.recon, 1.2);
  ctx.restore();
  const rows = Object.entries(s.meta).map(([k, v]) => `<tr><th>${k}</th><td>${v ?? ""}</td></tr>`);
  $("meta").innerHTML = `<tr><th>spectrum ${index}</th><td><span class="key" style="color:${COLORS.real}">real</span> ` +
    `<span style="color:${COLORS.recon}">━ reconstruction</span></td></tr>` + rows.join("");
}

// ---- the report ------------------------------------------------------------------------------
function drawMad() {
  const { mad, nodes, mad_threshold } = state.info, c = $("mad");
  const { ctx, tx } = axes(c, [-0.5, mad.length - 0.5], [0, Math.max(...mad, 1.5 * mad_threshold, 0.05) * 1.08], "node", "MAD");
  mad.forEach((v, i) => {
    ctx.strokeStyle = nodes.includes(i) ? "#1f5fbf" : "#bbb"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(tx.x(i), tx.y(0)); ctx.lineTo(tx.x(i), tx.y(v)); ctx.stroke();
  });
  ctx.setLineDash([4, 3]); ctx.strokeStyle = "#d62728"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(tx.m.l, tx.y(mad_threshold)); ctx.lineTo(tx.w, tx.y(mad_threshold)); ctx.stroke(); ctx.setLineDash([]);
  ctx.restore();
}

function buildReport() {
  const { mi, nodes, carriers, verdicts } = state.info;
  const labels = Object.keys(mi);
  if (!labels.length) { $("mi").innerHTML = "<tr><td>no report.json given (--report)</td></tr>"; return; }
  let html = `<tr><th></th>${nodes.map((n) => `<th>node ${n}</th>`).join("")}</tr>`;
  for (const label of labels) {
    const e = mi[label];
    html += `<tr><th>${label}</th>${nodes.map((n) => `<td class="${e.best_node === n && e.values[n] >= 0.1 ? "best" : ""}">${e.values[n].toFixed(2)}</td>`).join("")}</tr>`;
  }
  // each node's verdict beside its MI: clean (nothing else once its best label is known) or mixed (and with what)
  const verdict = (n) => {
    const v = (verdicts || {})[String(n)];
    if (!v) return "<td>–</td>";
    return v.clean ? `<td class="clean" title="carries nothing else once ${v.best_label} is known">clean</td>`
      : `<td class="mixed" title="carries more than ${v.best_label}: ${v.second_label} too">mixed</td>`;
  };
  html += `<tr><th>verdict</th>${nodes.map(verdict).join("")}</tr>`;
  $("mi").innerHTML = html;
  $("carriers").textContent = Object.entries(carriers)
    .map(([label, c]) => `${label}: ${c.kind} (node${c.nodes.length > 1 ? "s" : ""} ${c.nodes.join(", ")}, ${c.value.toFixed(2)} nat)`).join(" · ");
}

// ---- start -----------------------------------------------------------------------------------
(async function start() {
  try {
    state.info = await api("info");
    const i = state.info;
    setStatus(`${i.n_codes.toLocaleString()} codes · ${i.nodes.length} informative of ${i.latent_dim} nodes · ${i.checkpoint}`);
    buildSliders();
    buildPresets();
    buildReport();
    drawMad();
    buildScatterControls();
    await Promise.all([refresh(), loadScatter()]);
    state.ready = true;
  } catch (e) { setStatus(`error: ${e.message}`); }
})();
