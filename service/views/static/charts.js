// threadline dashboard: number formats and the inline-SVG line chart (no dependencies).
// Loaded before dashboard.js, which reads them from window.threadlineCharts.
"use strict";
(() => {
  const PALETTE = ["#5b8cff", "#3ccf91", "#b48cff", "#ffb547", "#ff5d6c", "#4dd0e1", "#f06292"];
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    if (typeof v !== "number") return String(v);
    return v.toLocaleString("en-US", { maximumFractionDigits: Number.isInteger(v) ? 0 : 1 });
  }
  function fmtDuration(ms) {  // lag spans milliseconds to days (old events replayed): read it in units
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
    const units = [[86400000, "d"], [3600000, "h"], [60000, "min"], [1000, "s"]];
    for (const [size, unit] of units) if (ms >= size) return `${fmt(Math.round((ms / size) * 10) / 10)} ${unit}`;
    return `${fmt(ms)} ms`;
  }
  function fmtCompact(v) {
    return v >= 1e6 ? `${fmt(v / 1e6)}M` : v >= 1e4 ? `${fmt(v / 1e3)}k` : fmt(v);
  }
  function minuteLabel(m) {
    const d = new Date(m * 60000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  }

  // ---- charts --------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs = {}) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }
  function niceMax(v) {  // four grid steps of 1, 2 or 5 × 10^k, so the ticks read cleanly
    const q = Math.max(v, 1) / 4, p = 10 ** Math.floor(Math.log10(q));
    return 4 * [1, 2, 5, 10].map((m) => m * p).find((m) => m >= q);
  }
  function lineChart(box, minutes, series, axisFmt = fmtCompact) {
    box.replaceChildren();
    const W = Math.max(box.clientWidth, 300), H = Math.max(box.clientHeight, 120);
    const pad = { l: 40, r: 10, t: 8, b: 22 };
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    const values = series.flatMap((x) => x.values.filter((v) => v != null));
    const max = niceMax(Math.max(0, ...values));
    const n = minutes.length;
    const x = (i) => pad.l + (n <= 1 ? 0 : (i * (W - pad.l - pad.r)) / (n - 1));
    const y = (v) => H - pad.b - (v / max) * (H - pad.t - pad.b);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4, yy = y(v);
      s.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: "grid-line" }));
      const t = svg("text", { x: pad.l - 6, y: yy + 3, "text-anchor": "end", class: "axis" });
      t.textContent = axisFmt(v);
      s.append(t);
    }
    const ticks = Math.min(6, n);
    for (let k = 0; k < ticks; k++) {
      const i = Math.round((k * (n - 1)) / Math.max(1, ticks - 1));
      const t = svg("text", { x: x(i), y: H - 6, "text-anchor": k === 0 ? "start" : k === ticks - 1 ? "end" : "middle", class: "axis" });
      t.textContent = minuteLabel(minutes[i]);
      s.append(t);
    }
    if (!values.length || values.every((v) => v === 0)) {
      const t = svg("text", { x: (W + pad.l) / 2, y: H / 2, "text-anchor": "middle", class: "empty" });
      t.textContent = "no traffic in this window";
      s.append(t);
    }
    series.forEach((ser, idx) => {
      const color = ser.color || PALETTE[idx % PALETTE.length];
      const gid = `g${box.id}${idx}`;
      const grad = svg("linearGradient", { id: gid, x1: 0, x2: 0, y1: 0, y2: 1 });
      grad.append(svg("stop", { offset: "0%", "stop-color": color, "stop-opacity": 0.28 }));
      grad.append(svg("stop", { offset: "100%", "stop-color": color, "stop-opacity": 0 }));
      const defs = svg("defs");
      defs.append(grad);
      s.append(defs);
      let d = "", area = "", start = null, prev = null;
      ser.values.forEach((v, i) => {
        if (v == null) {
          if (start !== null) area += `L${x(prev)},${y(0)}L${x(start)},${y(0)}Z`;
          start = null;
          return;
        }
        d += `${start === null ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        area += `${start === null ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        if (start === null) start = i;
        prev = i;
      });
      if (start !== null) area += `L${x(prev)},${y(0)}L${x(start)},${y(0)}Z`;
      s.append(svg("path", { d: area, fill: `url(#${gid})`, stroke: "none" }));
      ser.values.forEach((v, i) => {  // a point with no neighbour draws no line: mark it
        if (v != null && ser.values[i - 1] == null && ser.values[i + 1] == null) {
          s.append(svg("circle", { cx: x(i), cy: y(v), r: 3.5, fill: color }));
        }
      });
      s.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke" }));
    });
    box.append(s);
  }
  window.threadlineCharts = { PALETTE, fmt, fmtDuration, fmtCompact, lineChart };
})();
