// threadline dashboard: reads /api/v1/stats and the dead letters with the admin token kept in
// sessionStorage, redraws every few seconds. No dependencies: inline SVG, plain DOM.
// Three tabs, chosen by the URL's hash: the overview (#/), conversations (#/conversations,
// #/conversations/<id>: conversations.js) and the rules playground (#/rules: rules.js). This
// file owns the token, the outage panel and the refresh loop they all share.
"use strict";
(() => {
  const KEY = "threadline.adminToken";
  const REFRESH_MS = 5000;
  // The largest finite histogram bucket (workers.stats.BUCKETS_MS): a quantile there means "at least".
  const TOP_BUCKET_MS = 10000;
  const COLORS = { SMS: "var(--sms)", WHATSAPP: "var(--whatsapp)", RCS: "var(--rcs)", VOICE: "var(--voice)" };
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(KEY);
  let busy = false;
  let last = null;

  // ---- formatting ----------------------------------------------------------------------
  function at(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }
  const { PALETTE, fmt, fmtDuration, lineChart } = window.threadlineCharts;
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "style") {  // CSSOM, not a style attribute: the page's CSP forbids inline styles
        for (const [prop, val] of Object.entries(v)) e.style.setProperty(prop, val);
      }
      else if (k in e && typeof v !== "string") e[k] = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const stat = (path, dflt) => el("span", dflt === undefined ? { "data-stat": path } : { "data-stat": path, "data-default": dflt });
  function fillStats(data) {
    for (const node of document.querySelectorAll("[data-stat]")) {
      let v = at(data, node.dataset.stat);
      if (v === undefined && node.dataset.default !== undefined) v = Number(node.dataset.default);
      if (node.dataset.format !== "duration") node.textContent = fmt(v);
      else if (node.dataset.quantile !== undefined && v != null && v >= TOP_BUCKET_MS) node.textContent = `≥ ${fmtDuration(TOP_BUCKET_MS)}`;
      else node.textContent = fmtDuration(v == null ? v : v * Number(node.dataset.scale || 1));
    }
  }
  function bars(box, rows) {
    box.replaceChildren();
    const max = Math.max(1, ...rows.filter((r) => !r.section).map((r) => r.value || 0));
    for (const r of rows) {
      if (r.section) { box.append(el("div", { class: "section" }, r.section)); continue; }
      const pct = Math.max(0, ((r.value || 0) / max) * 100);
      box.append(el("div", { class: "row" },
        el("span", { class: "label", title: r.label }, r.label),
        el("div", { class: "track" }, el("div", { class: "fill", style: { width: `${pct}%`, background: r.color || "var(--accent)" } })),
        el("span", { class: "val" }, stat(r.path, 0))));
    }
    if (!rows.length) box.append(el("p", { class: "empty" }, "nothing in this window"));
  }

  // ---- sections ------------------------------------------------------------------------
  function render(data) {
    const s = data.summary, g = data.gauges;
    const step = data.step_minutes === 1 ? "minute" : `${data.step_minutes} minutes`;
    $("step").textContent = step;
    $("step-lag").textContent = step;
    const traffic = Object.entries(s.traffic_by_channel || {});
    lineChart($("chart-traffic"), data.points_start_minute,
      traffic.map(([ch, values], i) => ({ name: ch, values, color: COLORS[ch] || PALETTE[i % PALETTE.length] })));
    $("legend-traffic").replaceChildren(...traffic.map(([ch], i) =>
      el("span", { style: { "--c": COLORS[ch] || PALETTE[i % PALETTE.length] } }, ch, el("b", {}, stat(`summary.events.by_channel.${ch}.all`, 0)))));
    const outcomes = Object.keys((s.webhooks || {}).by_outcome || {});
    const outcomeColor = (o) => (o === "accepted" ? "var(--good)" : o === "duplicate" || o === "spooled" ? "var(--warn)" : "var(--bad)");
    const kinds = Object.keys((s.webhooks || {}).by_kind || {});
    bars($("outcomes"), outcomes.length ? [
      { section: "by outcome" },
      ...outcomes.map((o) => ({ label: o, value: s.webhooks.by_outcome[o], path: `summary.webhooks.by_outcome.${o}`, color: outcomeColor(o) })),
      { section: "by kind" },
      ...kinds.map((k) => ({ label: k.replace("_", " "), value: s.webhooks.by_kind[k], path: `summary.webhooks.by_kind.${k}`, color: "var(--sms)" })),
    ] : []);
    lineChart($("chart-lag"), data.points_start_minute, [{ name: "avg", values: (s.lag || {}).points_avg_ms || [], color: "var(--rcs)" }], fmtDuration);

    const shards = g.shards || [];
    $("shards-idle").hidden = g.backlog > 0;
    const maxB = Math.max(1, ...shards.map((r) => r.backlog));
    $("shards").replaceChildren(...shards.map((r, i) => el("div", {
      class: `col${r.backlog ? "" : " zero"}${r.oldest_age_s > 60 ? " hot" : ""}`,
      style: { height: `${Math.max(2, (r.backlog / maxB) * 100)}%` },
      title: `shard ${r.shard}: ${r.backlog} waiting (${r.pending} pending), oldest ${fmtDuration(r.oldest_age_s == null ? null : r.oldest_age_s * 1000)}`,
    }, el("span", { class: "n" }, r.backlog ? stat(`gauges.shards.${i}.backlog`) : ""), el("span", { class: "s" }, r.shard))));

    const conv = [];
    const byStatus = (g.conversations || {}).by_status || {};
    conv.push({ section: "now" });
    for (const st of Object.keys(byStatus)) conv.push({ label: st.toLowerCase(), value: byStatus[st], path: `gauges.conversations.by_status.${st}`, color: st === "CLOSED" ? "var(--muted)" : "var(--good)" });
    conv.push({ section: `in the last ${data.window}` });
    conv.push({ label: "created", value: s.conversations.created, path: "summary.conversations.created" });
    for (const [reason, n] of Object.entries(s.conversations.closed_by_reason)) conv.push({ label: `closed · ${reason}`, value: n, path: `summary.conversations.closed_by_reason.${reason}`, color: "var(--rcs)" });
    bars($("conversations"), conv);

    const errs = (s.v2 || {}).errors_by_route || [];
    const lat = (s.v2 || {}).latency_p95_ms_by_route || {};
    $("v2-errors").tBodies[0].replaceChildren(...(errs.length ? errs.map((e, i) => el("tr", {},
      el("td", {}, el("code", {}, e.route)), el("td", {}, el("span", { class: "pill bad" }, e.status)),
      el("td", { class: "num" }, stat(`summary.v2.errors_by_route.${i}.count`)),
      el("td", { class: "num" }, fmt(lat[e.route])))) : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "no errors from Twilio in this window"))]));
    $("kpi-v2").classList.toggle("alert", ((s.v2 || {}).errors || 0) > 0);
    $("kpi-backlog").classList.toggle("alert", (g.oldest_age_s || 0) > 60);
    $("kpi-dead").classList.toggle("alert", g.dead_letters > 0);

    const chans = Object.keys(s.events.by_channel);
    if (!chans.length) $("channels").tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "empty" }, "no events in this window")));
    else $("channels").tBodies[0].replaceChildren(...chans.map((ch) => el("tr", {},
      el("td", {}, el("span", { class: "pill", style: { color: COLORS[ch] || "inherit" } }, ch)),
      el("td", { class: "num" }, stat(`summary.events.by_channel.${ch}.captured`, 0)),
      el("td", { class: "num" }, stat(`summary.events.by_channel.${ch}.ignored`, 0)))));
    fillStats(data);
    $("generated").textContent = `as of ${new Date(data.generated_at_ms).toLocaleTimeString()}`;
    configurationsFrom(data);
  }

  function configurationsFrom(data) {
    if (data.configuration) return;
    const sel = $("configuration"), have = new Set([...sel.options].map((o) => o.value));
    for (const name of ["events", "conversations_created", "conversations_closed"]) {
      for (const row of ((data.counters[name] || {}).series || [])) {
        const id = row.labels.configuration;
        if (id && !have.has(id)) { sel.append(el("option", { value: id }, id)); have.add(id); }
      }
    }
  }

  async function renderDead() {
    const res = await api("/api/v1/dead-letters?count=50");
    const body = $("dead").tBodies[0];
    if (!res.ok) { body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty" }, `dead letters unavailable (HTTP ${res.status})`))); return; }
    const { deadLetters, meta } = await res.json();
    $("dead-total").textContent = fmt(meta.total);
    $("dead-empty").hidden = deadLetters.length > 0;
    body.replaceChildren(...deadLetters.map((d) => {
      const btn = el("button", { type: "button", class: "small", "data-replay": d.id }, "Replay");
      if (d.replayable === false) { btn.disabled = true; btn.title = d.problem || "not replayable"; }
      btn.addEventListener("click", () => replay(d.id, btn));
      return el("tr", { "data-dead-id": d.id },
        el("td", {}, d.deadAt ? new Date(d.deadAt).toLocaleString() : "—"),
        el("td", {}, (d.entry || {}).kind || "—"),
        el("td", {}, el("span", { class: "pill bad" }, d.reason)),
        el("td", { class: "num" }, fmt(d.attempts)),
        el("td", { class: "err", title: d.error || "" }, d.error || ""),
        el("td", { class: "num" }, btn));
    }));
  }

  async function replay(id, btn) {
    btn.disabled = true;
    const res = await api(`/api/v1/dead-letters/${encodeURIComponent(id)}/replay`, { method: "POST" });
    const body = await res.json().catch(() => ({}));
    if (res.ok) toast(`Replayed into shard ${body.shard}: a worker will deliver it`);
    else if (res.status === 401) return signedOut("That token was refused.");
    else toast(body.error || `replay failed (HTTP ${res.status})`, true);
    await refresh();
  }

  // ---- session, errors, refresh ---------------------------------------------------------
  function api(path, opts = {}) {
    return fetch(path, { ...opts, cache: "no-store", headers: { Authorization: `Bearer ${token}`, ...(opts.headers || {}) } });
  }
  function setStatus(state, text) { $("status").dataset.state = state; $("status-text").textContent = text; }
  function hideData() {
    for (const v of document.querySelectorAll("main.view")) v.hidden = true;
    for (const node of document.querySelectorAll("[data-stat]")) node.textContent = "";
    for (const id of ["chart-traffic", "chart-lag", "outcomes", "shards", "conversations", "legend-traffic"]) $(id).replaceChildren();
    for (const id of ["v2-errors", "channels", "dead"]) $(id).tBodies[0].replaceChildren();
    last = null;
  }
  function askToken(message) {
    document.body.classList.add("locked");
    hideData();
    $("outage").hidden = true;
    setStatus("idle", "not signed in");
    $("login-error").hidden = !message;
    $("login-error").textContent = message || "";
    $("token").value = "";
    if (!$("login").open) $("login").showModal();
    $("token").focus();
  }
  function signedOut(message) {
    token = null;
    sessionStorage.removeItem(KEY);
    askToken(message);
  }
  async function outage(title, text) {
    hideData();
    let ready = "unreachable";
    try { ready = String((await fetch("/readyz", { cache: "no-store" })).status); } catch (e) { /* web down too */ }
    $("outage-title").textContent = title;
    $("outage-text").textContent = `${text} (GET /readyz → ${ready})`;
    $("outage").hidden = false;
    setStatus("down", title);
  }
  function toast(text, bad = false) {
    const t = $("toast");
    t.textContent = text;
    t.className = bad ? "toast bad" : "toast";
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ---- views ---------------------------------------------------------------------------
  function route() {
    const [, tab = "", id] = (location.hash || "#/").split("/").map(decodeURIComponent);
    if (tab === "conversations" && id) return { view: "conversation", id };
    if (tab === "conversations" || tab === "rules") return { view: tab };
    if (tab === "dead" && id) return { view: "overview", dead: id };  // a conversation's dead letter
    return { view: "overview" };
  }
  function showView(name) {
    document.body.classList.remove("locked");
    $("outage").hidden = true;
    for (const v of document.querySelectorAll("main.view")) v.hidden = v.dataset.view !== name;
    const tab = name === "conversation" ? "conversations" : name;
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("on", a.dataset.view === tab);
    $("overview-controls").hidden = name !== "overview";
  }
  // What a view needs from this file: the API with the token, and the shared ways to answer.
  const ctx = {
    el, fmt, toast, show: showView,
    api: (path, opts) => api(path, opts),
    refresh: () => refresh(),
    // A response every view handles alike; true when the view should stop (said already).
    async refused(res, body) {
      if (res.status === 401) { signedOut("That token was refused. Try again."); return true; }
      if (res.status === 503 && body.redis === "down") {
        await outage("Redis is unreachable", "threadline cannot read its conversations or configurations, so none are shown. Webhooks are answered 503 until Redis is back, and Twilio retries them.");
        return true;
      }
      if (res.status === 503 && /admin API disabled/.test(body.error || "")) { await outage("Admin API disabled", body.error); return true; }
      return false;
    },
    async unreachable() { await outage("threadline is unreachable", "The dashboard cannot reach the web service."); },
  };

  async function refresh() {
    if (!token) return askToken();
    if (busy) return;
    busy = true;
    try {
      const r = route();
      if (r.view !== "overview") {
        const ok = await window.threadlineViews[r.view].refresh(ctx, r);
        if (ok) setStatus("live", `live · ${new Date().toLocaleTimeString()}`);
        return;
      }
      await refreshOverview();
    } finally {
      busy = false;
    }
  }

  async function refreshOverview() {
    const cfg = $("configuration").value;
    const q = `window=${encodeURIComponent($("window").value)}${cfg ? `&configuration=${encodeURIComponent(cfg)}` : ""}`;
    let res;
    try { res = await api(`/api/v1/stats?${q}`); } catch (e) {
      return outage("threadline is unreachable", "The dashboard cannot reach the web service.");
    }
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) return signedOut("That token was refused. Try again.");
    if (res.status === 503 && body.redis === "down") {
      return outage("Redis is unreachable", "threadline cannot read its numbers, so none are shown. Webhooks are answered 503 until Redis is back, and Twilio retries them.");
    }
    if (res.status === 503) return outage("Admin API disabled", body.error || "THREADLINE_ADMIN_TOKEN is not set.");
    if (res.status === 400) { toast(body.error, true); $("configuration").value = ""; return; }
    if (!res.ok) return outage(`Stats failed (HTTP ${res.status})`, body.error || "");
    showView("overview");
    last = body;
    render(body);
    await renderDead();
    pointAtDead(route().dead);
    setStatus("live", `live · ${new Date().toLocaleTimeString()}`);
  }
  let pointedAt = null;
  function pointAtDead(id) {
    const row = id && [...document.querySelectorAll("#dead tr[data-dead-id]")].find((r) => r.dataset.deadId === id);
    if (!row) return;
    row.classList.add("pointed");
    if (pointedAt !== id) { row.scrollIntoView({ block: "center" }); pointedAt = id; }
  }

  $("login-form").addEventListener("submit", (ev) => {
    const value = $("token").value.trim();
    if (!value) { ev.preventDefault(); return; }
    token = value;
    sessionStorage.setItem(KEY, token);
    $("login").close();
    refresh();
  });
  $("login").addEventListener("cancel", (ev) => ev.preventDefault());
  $("signout").addEventListener("click", () => signedOut());
  $("window").addEventListener("change", () => refresh());
  $("configuration").addEventListener("change", () => refresh());
  window.addEventListener("resize", () => { if (last && route().view === "overview") render(last); });
  window.addEventListener("hashchange", () => {
    if (!token) return;
    for (const v of Object.values(window.threadlineViews)) if (v.leave) v.leave();
    busy = false;  // a view change answers at once, not after the tick in flight
    refresh();
  });
  $("every").textContent = String(REFRESH_MS / 1000);
  setInterval(refresh, REFRESH_MS);
  window.threadlineDashboard = { refresh, last: () => last, route };
  refresh();
})();
