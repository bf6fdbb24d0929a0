// qbench leaderboard page: table (sort, filter, provenance), Pareto charts (SVG), diff.
// No dependencies and no network: the data is the JSON block above, so the page works from
// file:// and on any static host. Every text goes in through textContent, never innerHTML.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("qbench-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const FLAG_LABEL = { over_budget: "over budget", collapsed: "collapsed", deploy_diverged: "not what deploys" };
  const state = { sortKey: null, sortDir: 1, filters: { dataset: "", model: "", bits: "", method: "" }, panel: "", selected: null };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const fmt = (v, d) => (isNum(v) ? v.toFixed(d) : "n/a");
  const signed = (v, d) => (isNum(v) ? (v > 0 ? "+" : "") + v.toFixed(d) : "n/a");
  const pct = (v) => (isNum(v) ? (100 * v).toFixed(1) + "%" : "n/a");
  const uniq = (xs) => [...new Set(xs)];
  const panelOf = (e) => e.dataset + " / " + e.model;

  const COLUMNS = [
    { key: "rank", label: "rank", num: true, cell: (e) => (e.bits === "fp32" ? "ref" : e.rank === null ? "—" : String(e.rank)), sort: (e) => (e.bits === "fp32" ? 0 : e.rank) },
    { key: "dataset", label: "dataset" },
    { key: "model", label: "model" },
    { key: "method", label: "method", cell: (e) => e.method + " v" + e.method_version },
    { key: "bits", label: "bits", cell: (e) => e.bits_label },
    { key: "top1", label: "top-1 (%)", num: true, cell: (e) => fmt(e.top1, 2) + " ± " + fmt(e.top1_std, 2) },
    { key: "ci95", label: "±95% CI", num: true, cell: (e) => fmt(e.ci95, 2) },
    { key: "gap", label: "Δ FP", num: true, cell: (e) => signed(e.gap, 2) },
    { key: "n", label: "seeds", num: true, cell: (e) => String(e.n) },
    { key: "w_bits", label: "W bits", num: true, cell: (e) => fmt(e.w_bits, 2) },
    { key: "a_bits", label: "A bits", num: true, cell: (e) => fmt(e.a_bits, 2) },
    { key: "w_sparsity", label: "W zeros", num: true, cell: (e) => pct(e.w_sparsity) },
    { key: "gbitops", label: "GBitOPs", num: true, cell: (e) => fmt(e.gbitops, 5) },
    { key: "size_kb", label: "size (KB)", num: true, cell: (e) => fmt(e.size_kb, 1) },
    { key: "deploy_top1", label: "deploy", num: true, cell: (e) => el("span", { title: e.deploy_reason || "onnxruntime top-1 on the CPU; int = integer kernels" }, e.deploy) },
  ];
  if (DATA.papers) {
    // The suite names a papers file: each paper's top-1 for the same method and bits, and the gaps
    // (ours minus the paper's, and our drop from our FP minus the paper's drop from its FP).
    const blank = (f) => (e) => (isNum(e.paper_top1) ? f(e) : "");
    const at = COLUMNS.findIndex((c) => c.key === "gap") + 1;
    COLUMNS.splice(at, 0,
      { key: "paper_top1", label: "paper", num: true, title: "top-1 a paper reports for this method and bits (hover a cell for its source)",
        cell: (e) => el("span", { title: e.paper_source || null }, isNum(e.paper_top1) ? fmt(e.paper_top1, 2) : "") },
      { key: "paper_gap", label: "paper Δ FP", num: true, title: "the paper's drop from its own FP model", cell: blank((e) => signed(e.paper_gap, 2)) },
      { key: "vs_paper", label: "ours − paper", num: true, title: "our top-1 minus the paper's", cell: blank((e) => signed(e.vs_paper, 2)) },
      { key: "vs_paper_gap", label: "Δ FP − paper Δ FP", num: true, title: "our drop from our FP minus the paper's drop from its FP (FP baselines differ)",
        cell: blank((e) => signed(e.vs_paper_gap, 2)) });
  }
  if (DATA.deploy_cost) {
    // The deployed model timed in onnxruntime beside its FP32 model (rows that measured it): the
    // milliseconds are the machine's (see each seed's provenance), the speedups carry across machines.
    const speed = (v) => (isNum(v) ? v.toFixed(2) + "×" : "n/a");
    const ref = (e, f) => (e.bits === "fp32" ? "—" : f(e));
    COLUMNS.push(
      { key: "latency_ms", label: "ORT ms b1", num: true, title: "median latency (ms) of model.onnx at batch 1 in onnxruntime on the CPU, on this machine (the fp32 line: the FP32 models timed beside)",
        cell: (e) => (isNum(e.latency_ms) ? e.latency_ms.toPrecision(3) : "n/a") },
      { key: "batch_latency_ms", label: "ORT ms batch", num: true, title: "median latency (ms) at the eval batch (256, or the whole test split when smaller)",
        cell: (e) => (isNum(e.batch_latency_ms) ? e.batch_latency_ms.toPrecision(3) : "n/a") },
      { key: "speedup", label: "speedup b1", num: true, title: "FP32 median latency / quantized median latency at batch 1, timed interleaved in one process (above 1: faster)",
        cell: (e) => ref(e, (x) => speed(x.speedup)) },
      { key: "batch_speedup", label: "speedup batch", num: true, title: "the same at the eval batch", cell: (e) => ref(e, (x) => speed(x.batch_speedup)) },
      { key: "peak_mb", label: "ORT MB", num: true, title: "peak resident memory (MiB) of the session loading model.onnx and running the eval batch", cell: (e) => fmt(e.peak_mb, 1) },
      { key: "onnx_kb", label: "ONNX KB", num: true, title: "size of model.onnx", cell: (e) => fmt(e.onnx_kb, 0) });
  }
  if (DATA.pareto_marks) {
    COLUMNS.push({ key: "pareto", label: "front", sort: (e) => -e.pareto.length, cell: (e) => (e.pareto.length ? "★ " + e.pareto.join("") : ""),
      title: "On the Pareto front of its dataset and model: B = top-1 vs GBitOPs, S = top-1 vs size" });
  }
  if (DATA.flags.length) {
    COLUMNS.push({
      key: "flags", label: "flags", sort: (e) => DATA.flags.filter((f) => e[f]).length || null,
      cell: (e) => { const s = el("span", { title: e.flag_reason || null }); DATA.flags.filter((f) => e[f]).forEach((f) => s.append(el("span", { class: "badge " + f }, FLAG_LABEL[f] || f))); return s; },
    });
  }

  function visible() {
    const f = state.filters;
    let rows = DATA.entries.filter((e) => (!f.dataset || e.dataset === f.dataset) && (!f.model || e.model === f.model)
      && (!f.bits || e.bits === f.bits) && (!f.method || e.method === f.method));
    if (state.sortKey) {
      const col = COLUMNS.find((c) => c.key === state.sortKey);
      const key = col.sort || ((e) => e[col.key]);
      rows = rows.map((e, i) => [e, i]).sort((a, b) => {
        const x = key(a[0]), y = key(b[0]);
        if (x === y || (x == null && y == null)) return a[1] - b[1];
        if (x == null) return 1;
        if (y == null) return -1;
        return (x < y ? -1 : 1) * state.sortDir;
      }).map((p) => p[0]);
    }
    return rows;
  }

  function buildFilters() {
    const form = document.getElementById("filters");
    for (const key of ["dataset", "model", "bits", "method"]) {
      const box = el("select", { id: "filter-" + key, name: key }, el("option", { value: "" }, "all"));
      uniq(DATA.entries.map((e) => e[key])).sort().forEach((v) => box.append(el("option", { value: v }, v)));
      box.addEventListener("change", () => { state.filters[key] = box.value; syncPanel(); render(); });
      form.append(el("label", {}, key + " ", box));
    }
    const reset = el("button", { type: "button", id: "reset" }, "reset");
    reset.addEventListener("click", () => {
      for (const key in state.filters) { state.filters[key] = ""; document.getElementById("filter-" + key).value = ""; }
      state.sortKey = null; syncPanel(); render();
    });
    form.append(reset);
  }

  function renderTable() {
    const thead = document.querySelector("#table thead"), tbody = document.querySelector("#table tbody");
    thead.replaceChildren();
    const tr = el("tr");
    for (const c of COLUMNS) {
      const sorted = state.sortKey === c.key ? (state.sortDir > 0 ? "ascending" : "descending") : null;
      const button = el("button", { type: "button", "data-sort": c.key }, c.label);
      button.addEventListener("click", () => {
        if (state.sortKey === c.key) state.sortDir = -state.sortDir;
        else { state.sortKey = c.key; state.sortDir = c.num && c.key !== "rank" && c.key !== "gbitops" && c.key !== "size_kb" ? -1 : 1; }
        render();
      });
      tr.append(el("th", { class: c.num ? "num" : null, "aria-sort": sorted, scope: "col", title: c.title || null }, button));
    }
    thead.append(tr);
    const rows = visible();
    tbody.replaceChildren(...rows.map((e) => {
      const row = el("tr", { "data-id": e.id, "data-method": e.method, "data-bits": e.bits, tabindex: 0,
        class: [e.bits === "fp32" ? "ref" : "", state.selected === e.id ? "selected" : ""].join(" ").trim() || null });
      for (const c of COLUMNS) row.append(el("td", { class: c.num ? "num" : null, "data-col": c.key }, c.cell ? c.cell(e) : String(e[c.key])));
      row.addEventListener("click", () => select(e.id));
      row.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(e.id); });
      return row;
    }));
    document.getElementById("count").textContent = rows.length + " of " + DATA.entries.length + " entries";
  }

  function select(id) {
    state.selected = id;
    render();
    const box = document.getElementById("provenance");
    box.scrollIntoView({ block: "nearest" });
  }

  function renderProvenance() {
    const box = document.getElementById("provenance");
    const e = DATA.entries.find((x) => x.id === state.selected);
    box.hidden = !e;
    if (!e) return box.replaceChildren();
    const close = el("button", { type: "button", id: "close-provenance" }, "close");
    close.addEventListener("click", () => { state.selected = null; render(); });
    // with the deployed cost: each seed's own timing (ms on the machine named below, and the speedups)
    const costHead = DATA.deploy_cost ? ["ORT ms b1", "FP32 ms b1", "speedup b1", "speedup batch"] : [];
    const costCells = (s) => (DATA.deploy_cost ? [fmt(s.deploy_latency_ms, 3), fmt(s.deploy_fp32_latency_ms, 3), fmt(s.deploy_speedup, 2),
      fmt(s.deploy_batch_speedup, 2)].map((v) => el("td", { class: "num" }, v)) : []);
    const seedTable = el("table", { id: "seeds" }, el("thead", {}, el("tr", {}, ...["seed", "top-1", "job key", "FP key", "date", "wall (s)", ...costHead].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...e.seeds.map((s) => el("tr", {}, el("td", {}, String(s.seed)), el("td", { class: "num" }, fmt(s.top1, 2)),
        el("td", {}, el("code", {}, s.job_key || "")), el("td", {}, el("code", {}, s.fp_key || "")), el("td", {}, s.date || ""), el("td", { class: "num" }, fmt(s.wall_s, 1)),
        ...costCells(s)))));
    const dl = el("dl");
    const fields = [["command", "command"], ["plugin", "plugin"], ["method_version", "method version"], ["qbench_version", "qbench"],
      ["torch_version", "torch"], ["timm_version", "timm"], ["python_version", "python"], ["git_commit", "git commit"],
      ["machine", "machine"], ["torch_threads", "torch threads"], ["suite_sha", "suite sha"], ["dataset_hash", "dataset hash"],
      ["onnxruntime_version", "onnxruntime"], ["deploy_latency_threads", "onnxruntime threads (timed)"]];
    for (const [key, label] of fields) {
      const values = uniq(e.seeds.map((s) => s[key]).filter((v) => v !== null && v !== undefined)).map(String);
      if (!values.length) continue;
      dl.append(el("dt", {}, label), el("dd", { "data-field": key }, ...values.map((v, i) => el(key === "command" ? "code" : "span", {}, (i ? "; " : "") + v))));
    }
    box.replaceChildren(el("h2", {}, "Provenance: " + e.method + " v" + e.method_version + " " + e.bits + " on " + panelOf(e) + " ", close),
      el("p", { class: "muted" }, e.n + " seed(s); top-1 " + fmt(e.top1, 2) + " ± " + fmt(e.top1_std, 2)),
      e.flag_reason ? el("p", { class: "warn", id: "flag-reason" }, "Not ranked: " + e.flag_reason) : "", el("div", { class: "scroll" }, seedTable), dl,
      learnedTable(e.seeds));
  }

  // What the quantizers learned (the row's `learned` field): per quantity and seed, the mean over
  // the quantizers reporting it after calibration and after the last QAT step, and how far each moved.
  const sig = (v, d) => (isNum(v) ? String(+v.toPrecision(d)) : "n/a");
  function learnedTable(seeds) {
    const keys = uniq(seeds.flatMap((s) => Object.keys(s.learned || {}))).sort();
    if (!keys.length) return "";
    const head = ["quantity", "seed", "start (mean)", "end (mean)", "end min … max", "mean |end − start|", "quantizers"];
    const body = [];
    for (const key of keys) {
      for (const s of seeds) {
        const q = (s.learned || {})[key];
        if (!q) continue;
        body.push(el("tr", { "data-key": key, "data-seed": s.seed }, el("td", {}, el("code", {}, key)), el("td", {}, String(s.seed)),
          el("td", { class: "num", "data-stat": "start_mean" }, sig(q.start_mean, 5)), el("td", { class: "num", "data-stat": "end_mean" }, sig(q.end_mean, 5)),
          el("td", { class: "num", "data-stat": "end_range" }, sig(q.end_min, 4) + " … " + sig(q.end_max, 4)),
          el("td", { class: "num", "data-stat": "mean_abs_change" }, sig(q.mean_abs_change, 3)), el("td", { class: "num" }, String(q.n))));
      }
    }
    return el("div", { id: "learned-state" }, el("h3", {}, "Learned by the quantizers"),
      el("p", { class: "muted" }, "start: after calibration; end: after the last QAT step; means over the quantizers (layers) reporting it, in the units of the tensor they quantize."),
      el("div", { class: "scroll" }, el("table", { id: "learned" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), el("tbody", {}, ...body))));
  }

  // ---- Pareto charts ------------------------------------------------------------------------
  const BITS = uniq(DATA.entries.map((e) => e.bits));
  const colour = (bits) => PALETTE[BITS.indexOf(bits) % PALETTE.length];

  function paretoFront(all, xKey) {
    // Non-dominated: no other point with cost <= and top-1 >= with one of them strict. A collapsed
    // entry is on no front (as in leaderboard.md): its cost says nothing about a working model.
    const points = all.filter((p) => !p.collapsed);
    return new Set(points.filter((p) => !points.some((q) => q !== p && q[xKey] <= p[xKey] && q.top1 >= p.top1
      && (q[xKey] < p[xKey] || q.top1 > p.top1))).map((p) => p.id));
  }

  function niceTicks(lo, hi, count) {
    const step0 = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
    return ticks;
  }
  function logTicks(lo, hi) {
    const ticks = [];
    for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
      for (const m of [1, 2, 5]) { const t = m * Math.pow(10, p); if (t >= lo && t <= hi) ticks.push(t); }
    }
    return ticks;
  }
  const tickLabel = (t) => (Math.abs(t) >= 1e5 || (Math.abs(t) < 0.01 && t !== 0) ? t.toExponential(0) : String(+t.toPrecision(3)));

  function drawChart(svg, points, xKey, xLabel) {
    const W = 560, H = 340, m = { l: 52, r: 16, t: 12, b: 42 };
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.replaceChildren();
    const pts = points.filter((p) => isNum(p[xKey]) && isNum(p.top1));
    svg.dataset.points = String(pts.length);
    if (!pts.length) {
      svg.append(Object.assign(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }), { textContent: "no rows with this cost" }));
      return;
    }
    const xs = pts.map((p) => p[xKey]), ys = pts.map((p) => p.top1);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const log = x0 > 0 && x1 / x0 >= 10;
    if (log) { x0 /= 1.35; x1 *= 1.35; } else { const pad = (x1 - x0 || Math.abs(x0) || 1) * 0.08; x0 -= pad; x1 += pad; }
    const ypad = (y1 - y0 || 1) * 0.1; y0 -= ypad; y1 += ypad;
    const fx = log ? (v) => m.l + (Math.log(v / x0) / Math.log(x1 / x0)) * (W - m.l - m.r) : (v) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
    const fy = (v) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
    const grid = svgEl("g", { class: "grid" }), axis = svgEl("g", { class: "axis" });
    const xt = log ? logTicks(x0, x1) : niceTicks(x0, x1, 6), yt = niceTicks(y0, y1, 6);
    for (const t of xt) {
      grid.append(svgEl("line", { x1: fx(t), x2: fx(t), y1: m.t, y2: H - m.b }));
      axis.append(Object.assign(svgEl("text", { x: fx(t), y: H - m.b + 15, "text-anchor": "middle" }), { textContent: tickLabel(t) }));
    }
    for (const t of yt) {
      grid.append(svgEl("line", { x1: m.l, x2: W - m.r, y1: fy(t), y2: fy(t) }));
      axis.append(Object.assign(svgEl("text", { x: m.l - 6, y: fy(t) + 4, "text-anchor": "end" }), { textContent: tickLabel(t) }));
    }
    axis.append(svgEl("path", { d: "M" + m.l + "," + m.t + "V" + (H - m.b) + "H" + (W - m.r), fill: "none" }));
    axis.append(Object.assign(svgEl("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }), { textContent: xLabel + (log ? " (log)" : "") }));
    axis.append(Object.assign(svgEl("text", { x: 12, y: (m.t + H - m.b) / 2, "text-anchor": "middle", transform: "rotate(-90 12 " + (m.t + H - m.b) / 2 + ")" }), { textContent: "top-1 (%)" }));
    svg.append(grid, axis);
    const front = paretoFront(pts, xKey);
    const fpts = pts.filter((p) => front.has(p.id)).sort((a, b) => a[xKey] - b[xKey]);
    let d = "";
    fpts.forEach((p, i) => { d += (i ? "H" + fx(p[xKey]) + "V" : "M" + fx(p[xKey]) + ",") + fy(p.top1); });
    if (fpts.length > 1) svg.append(svgEl("path", { class: "frontline", d }));
    // Front points last, so a dominated point never hides one on the front.
    for (const p of [...pts.filter((q) => !front.has(q.id)), ...fpts]) {
      const onFront = front.has(p.id);
      const c = svgEl("circle", { cx: fx(p[xKey]), cy: fy(p.top1), r: onFront ? 7 : 5.5, fill: colour(p.bits), tabindex: 0,
        class: "point" + (onFront ? " front" : "") + (state.selected === p.id ? " selected" : ""), "data-id": p.id, "data-method": p.method,
        "data-bits": p.bits, "data-front": onFront ? "true" : "false", "aria-label": p.method + " " + p.bits + ", top-1 " + fmt(p.top1, 2) });
      const show = () => showTip(c, p, xKey, onFront), hide = () => { document.getElementById("tooltip").hidden = true; };
      c.addEventListener("mouseenter", show); c.addEventListener("focus", show);
      c.addEventListener("mouseleave", hide); c.addEventListener("blur", hide);
      c.addEventListener("click", () => select(p.id));
      svg.append(c);
    }
  }

  function showTip(node, p, xKey, onFront) {
    const tip = document.getElementById("tooltip");
    const cost = xKey === "gbitops" ? "GBitOPs " + fmt(p.gbitops, 5) : "size " + fmt(p.size_kb, 1) + " KB";
    tip.replaceChildren(el("strong", { "data-field": "method" }, p.method + " v" + p.method_version), el("br"),
      el("span", { "data-field": "bits" }, "bits " + p.bits_label), el("br"),
      el("span", { "data-field": "top1" }, "top-1 " + fmt(p.top1, 2) + " ± " + fmt(p.top1_std, 2) + " %"), el("br"),
      el("span", { "data-field": "cost" }, cost), el("br"),
      el("span", { "data-field": "front" }, onFront ? "Pareto-optimal" : p.collapsed ? "collapsed (on no front)" : "dominated"),
      ...(p.flag_reason ? [el("br"), el("span", { "data-field": "flag" }, p.flag_reason)] : []));
    tip.hidden = false;
    const r = node.getBoundingClientRect(), t = tip.getBoundingClientRect();
    tip.style.left = Math.max(4, Math.min(window.innerWidth - t.width - 4, r.right + 8)) + "px";
    tip.style.top = Math.max(4, r.top - t.height - 6) + "px";
  }

  const PANELS = uniq(DATA.entries.map(panelOf));
  function syncPanel() {
    // The chart follows the table's dataset/model filters: the first panel they allow.
    const f = state.filters;
    const ok = PANELS.filter((p) => DATA.entries.some((e) => panelOf(e) === p && (!f.dataset || e.dataset === f.dataset) && (!f.model || e.model === f.model)));
    if (ok.length && !ok.includes(state.panel)) state.panel = ok[0];
    document.getElementById("panel").value = state.panel;
  }

  function renderCharts() {
    const f = state.filters;
    const pts = DATA.entries.filter((e) => panelOf(e) === state.panel && (!f.bits || e.bits === f.bits) && (!f.method || e.method === f.method));
    drawChart(document.getElementById("chart-gbitops"), pts, "gbitops", "GBitOPs");
    drawChart(document.getElementById("chart-size_kb"), pts, "size_kb", "size (KB)");
  }

  function buildChartControls() {
    const panel = document.getElementById("panel");
    PANELS.forEach((p) => panel.append(el("option", { value: p }, p)));
    state.panel = PANELS[0] || "";
    panel.addEventListener("change", () => { state.panel = panel.value; renderCharts(); });
    const legend = document.getElementById("legend");
    BITS.forEach((b) => legend.append(el("span", { style: "--c:" + colour(b) }, b)));
    legend.append(el("span", { style: "--c:#fff;--b:var(--front)" }, "Pareto-optimal"));
  }

  // ---- header, diff, failed jobs ----------------------------------------------------------
  function renderHeader() {
    const meta = DATA.meta, join = (xs) => (xs && xs.length ? xs.join(", ") : "n/a");
    document.getElementById("summary").textContent = meta.rows_ok + " of " + meta.rows + " jobs ok; qbench " + join(meta.qbench_version)
      + "; torch " + join(meta.torch_version) + "; timm " + join(meta.timm_version) + "; commit " + join(meta.git_commit) + "; machine: "
      + join(meta.machine) + "; torch threads: " + join(meta.torch_threads) + "; first/last layers: " + (DATA.first_last || "n/a")
      + "; datasets: " + join(meta.dataset_hash) + (meta.command ? "; produced by: " + meta.command : "");
    const files = document.getElementById("files");
    DATA.files.forEach((f, i) => files.append(i ? " · " : "Files: ", el("a", { href: f }, f)));
    if (DATA.papers) {
      files.after(el("p", { id: "papers-note", class: "muted" }, "Paper: the top-1 a paper reports for the same method and bits; "
        + "Δ FP − paper Δ FP compares each side's drop from its own FP model, since the FP baselines differ. Blank where no paper reports the entry."),
      el("details", { id: "papers-sources" }, el("summary", {}, "Paper numbers and their sources (" + DATA.papers.length + ")"),
        el("ul", {}, ...DATA.papers.map((p) => el("li", {}, p.dataset + " / " + p.model + " / " + p.method + " / " + p.bits + ": "
          + fmt(p.top1, 2) + " (FP " + fmt(p.fp_top1, 2) + "): " + p.source + (p.note ? " (" + p.note + ")" : ""))))));
    }
    if (DATA.deploy_cost) {
      files.after(el("p", { id: "deploy-cost-note", class: "muted" }, "ORT ms: median latency of model.onnx in onnxruntime on the CPU, on the "
        + "machine each seed's provenance names (never compare milliseconds across machines). Speedup: the FP32 model's median over the "
        + "quantized model's, timed interleaved in one process at batch 1 and at the eval batch; above 1 the deployed model is faster. "
        + "ORT MB: the session's peak resident memory loading the model and running the eval batch. Means over seeds; the fp32 line "
        + "shows the FP32 models the quantized rows were timed against."));
    }
    const versions = document.getElementById("versions");
    if (DATA.versions.length > 1) {
      versions.append(DATA.suite + " versions: ");
      DATA.versions.forEach((v) => versions.append(v === DATA.version ? el("strong", {}, "v" + v + " ") : el("a", { href: "../v" + v + "/index.html" }, "v" + v)));
    }
  }

  function renderDiff() {
    const box = document.getElementById("diff");
    if (!DATA.diff) { box.append(el("h2", {}, "Changes"), el("p", { class: "muted", id: "diff-summary" }, "First publication of this suite: no previous version to compare with.")); return; }
    const rows = DATA.diff.rows;
    const changed = (r) => r.top1_old === null || r.top1_new === null || Math.abs(r.top1_diff || 0) > 1e-9 || (r.rank_diff || 0) !== 0 || r.method_version_old !== r.method_version_new;
    const moved = rows.filter(changed);
    const count = (p) => rows.filter(p).length;
    box.append(el("h2", {}, "Changes against " + (DATA.diff.against || "the previous publication")),
      el("p", { id: "diff-summary" }, rows.length + " entries compared: " + count((r) => r.top1_old !== null && r.top1_new !== null && Math.abs(r.top1_diff) > 1e-9) + " changed top-1, "
        + count((r) => (r.rank_diff || 0) !== 0) + " changed rank, " + count((r) => r.top1_old === null) + " new, " + count((r) => r.top1_new === null) + " removed, "
        + count((r) => r.top1_old !== null && r.top1_new !== null && r.method_version_old !== r.method_version_new) + " with a new method version."));
    if (!moved.length) return;
    const head = ["dataset", "model", "method", "bits", "top-1 before", "top-1 now", "Δ top-1", "rank", "method version"];
    box.append(el("div", { class: "scroll" }, el("table", { id: "diff-table" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...moved.map((r) => el("tr", { class: "changed" }, el("td", {}, r.dataset), el("td", {}, r.model), el("td", {}, r.method), el("td", {}, r.bits),
        el("td", { class: "num" }, fmt(r.top1_old, 2)), el("td", { class: "num" }, fmt(r.top1_new, 2)),
        el("td", { class: "num " + (r.top1_diff > 0 ? "pos" : r.top1_diff < 0 ? "neg" : "") }, signed(r.top1_diff, 2)),
        el("td", {}, (r.rank_old ?? "–") + " → " + (r.rank_new ?? "–")), el("td", {}, (r.method_version_old ?? "–") + " → " + (r.method_version_new ?? "–"))))))));
  }

  function renderCosts() {
    // Training cost: forward passes per optimizer step (measured) and QAT time relative to lsq on the same job
    if (!DATA.training_cost) return;
    const box = document.getElementById("costs");
    box.hidden = false;
    const head = ["dataset", "model", "bits", "method", "passes/step", "teacher", "QAT s", "QAT time vs lsq"];
    box.append(el("h2", {}, "Training cost"),
      el("p", { class: "muted" }, "Forward calls per optimizer step of the quantized model and of any teacher (the frozen FP model a KD or BWRF "
        + "wrapper runs; teacher: their share), counted during QAT, allocator probes included, mean over seeds. QAT time vs lsq: QAT wall "
        + "time over that of the lsq row of the same dataset, model, bits and seed, mean over seeds (n/a without one)."),
      el("div", { class: "scroll" }, el("table", { id: "costs-table" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
        el("tbody", {}, ...DATA.training_cost.map((r) => el("tr", {}, el("td", {}, r.dataset), el("td", {}, r.model), el("td", {}, r.bits),
          el("td", {}, r.method + " v" + r.method_version), el("td", { class: "num" }, fmt(r.passes_per_step, 2)),
          el("td", { class: "num" }, fmt(r.teacher_passes_per_step, 2)), el("td", { class: "num" }, fmt(r.qat_s, 1)),
          el("td", { class: "num" }, r.qat_vs_lsq === null ? "n/a" : fmt(r.qat_vs_lsq, 2) + "x")))))));
  }

  function renderFailed() {
    if (!DATA.failed.length) return;
    const box = document.getElementById("failed");
    box.hidden = false;
    box.append(el("h2", {}, "Jobs that did not finish"), el("ul", {}, ...DATA.failed.map((r) => el("li", {},
      r.dataset + "/" + r.model + "/" + r.method + "/" + r.bits + "/seed" + r.seed + ": " + r.status + (r.reason ? ": " + r.reason : "")))));
  }

  function render() { renderTable(); renderProvenance(); renderCharts(); }

  renderHeader();
  buildFilters();
  buildChartControls();
  syncPanel();
  render();
  renderCosts();
  renderDiff();
  renderFailed();
  document.body.dataset.ready = "true";
})();
