// threadline dashboard: the rules playground (#/rules). The configurations as the store holds
// them (read-only, any version), and a form that asks POST /api/v1/rules/explain what threadline
// would do with one event: which rules match, the customer side, the grouping key, the
// conversation it would join. dashboard.js calls refresh(ctx) every few seconds.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const pinned = {};  // configuration id → the version a person chose to read (absent: current)
  let el;
  let seen = "";      // what was drawn last, so a refresh that changes nothing keeps the page still

  async function getJSON(ctx, path, opts) {
    let res;
    try { res = await ctx.api(path, opts); } catch (e) { await ctx.unreachable(); return null; }
    const body = await res.json().catch(() => ({}));
    if (await ctx.refused(res, body)) return null;
    return { res, body };
  }

  const meta = (r) => (r.metadata && Object.keys(r.metadata).length ? JSON.stringify(r.metadata) : "");

  function rulesTable(channel, settings) {
    const rules = settings.captureRules || [];
    const t = settings.statusTimeouts || {};
    const timeouts = Object.keys(t).length ? `inactive after ${t.inactive ?? "—"} min · closed after ${t.closed ?? "—"} min` : "default timeouts";
    return el("div", { class: "channel" },
      el("h4", {}, channel, el("span", { class: "hint" }, ` · ${rules.length} rule${rules.length === 1 ? "" : "s"} · ${timeouts}`)),
      el("table", { class: "table rules" },
        el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "from"), el("th", {}, "to"), el("th", {}, "metadata"))),
        el("tbody", {}, ...rules.map((r, i) => el("tr", {},
          el("td", { class: "num" }, i), el("td", {}, el("code", {}, r.from)), el("td", {}, el("code", {}, r.to)),
          el("td", {}, meta(r) ? el("code", {}, meta(r)) : "—"))))));
  }

  function configCard(ctx, c, current) {
    const versions = el("select", { "aria-label": `version of ${c.id}` });
    for (let v = current; v >= 1; v--) versions.append(el("option", { value: String(v) }, v === current ? `v${v} (current)` : `v${v}`));
    versions.value = String(c.version);
    versions.addEventListener("change", () => {
      if (Number(versions.value) === current) delete pinned[c.id]; else pinned[c.id] = Number(versions.value);
      seen = "";
      ctx.refresh();
    });
    const channels = Object.entries(c.channelSettings || {}).filter(([, s]) => s && (s.captureRules || []).length);
    return el("section", { class: "config", "data-config-id": c.id },
      el("header", {}, el("h3", {}, c.displayName || c.id, " ", el("code", {}, c.id)), versions),
      el("p", { class: "hint" }, `${c.conversationGroupingType} · source ${c.source}` +
        (c.twilioConfigurationId ? ` · bound to ${c.twilioConfigurationId}` : "") + (c.description ? ` · ${c.description}` : "")),
      ...(channels.length ? channels.map(([ch, s]) => rulesTable(ch, s)) : [el("p", { class: "empty" }, "no capture rules")]));
  }

  async function configurations(ctx) {
    const got = await getJSON(ctx, "/api/v1/configurations");
    if (!got) return false;
    ctx.show("rules");
    if (!got.res.ok) {
      $("configs").replaceChildren(el("p", { class: "problem-inline" }, `The configurations could not be read: ${got.body.error || `HTTP ${got.res.status}`}.`));
      seen = "";
      return true;
    }
    const current = got.body.configurations || [];
    const shown = [];
    for (const c of current) {
      const want = pinned[c.id];
      if (!want || want === c.version) { shown.push([c, c.version]); continue; }
      const old = await getJSON(ctx, `/api/v1/configurations/${encodeURIComponent(c.id)}?version=${want}`);
      if (!old) return false;
      shown.push([old.res.ok ? old.body : c, c.version]);
    }
    const key = JSON.stringify(shown);
    if (key !== seen) {
      seen = key;
      $("configs").replaceChildren(...shown.map(([c, cur]) => configCard(ctx, c, cur)));
    }
    $("configs-empty").hidden = current.length > 0;
    return true;
  }

  // ---- explain ---------------------------------------------------------------------------
  function kv(term, ...value) { return [el("dt", {}, term), el("dd", {}, ...value)]; }

  function conversationWords(conv) {
    if (!conv) return "—";
    if (conv.action === "join") {
      return el("span", {}, "joins ", el("a", { href: `#/conversations/${encodeURIComponent(conv.id)}` }, conv.id), ` (${conv.status}, configuration v${conv.configurationVersion})`);
    }
    if (conv.action === "create") {
      return `creates a new conversation (configuration v${conv.configurationVersion})` + (conv.previous ? `; the key's last one, ${conv.previous}, is ${conv.previousStatus}` : "");
    }
    return `${conv.action}${conv.note ? `: ${conv.note}` : ""}`;
  }

  function renderExplain(ctx, body) {
    const box = $("explain-result");
    box.hidden = false;
    const head = el("p", { class: "verdict" }, `${body.channel} ${body.from} → ${body.to}` + (body.callType ? ` · callType ${body.callType}` : ""));
    if (!body.matches.length) {
      box.replaceChildren(head, el("p", { class: "ignored" }, `Ignored: ${body.ignored}.`));
      return;
    }
    box.replaceChildren(head, ...body.matches.map((m) => el("section", { class: "match", "data-config-id": m.configurationId },
      el("h4", {}, `Captured by ${m.configurationId} · v${m.version}`),
      el("dl", { class: "facts" },
        ...kv("rules", ...m.rules.map((r) => el("div", {}, el("code", {}, `#${r.index} ${r.from} → ${r.to}${meta(r) ? ` ${meta(r)}` : ""}`)))),
        ...kv("customer", el("code", {}, m.customer.address), ` (${m.customer.side} side: ${m.customer.reason})`),
        ...kv("account", el("code", {}, m.account.address), ` as ${m.account.participantType}`),
        ...kv("grouping", m.groupingType),
        ...kv("grouping key", el("code", {}, m.groupingKey == null ? "decided at capture time" : m.groupingKey)),
        ...(m.profile ? kv("profile", `${m.profile.id || "—"} (${m.profile.source})`) : []),
        ...kv("conversation", conversationWords(m.conversation))))));
  }

  async function explain(ctx) {
    const f = new FormData($("explain-form"));
    const body = { channel: f.get("channel"), from: String(f.get("from")).trim(), to: String(f.get("to")).trim() };
    if (f.get("callType")) body.metadata = { callType: f.get("callType") };
    const got = await getJSON(ctx, "/api/v1/rules/explain", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!got) return;
    if (!got.res.ok) {
      $("explain-result").hidden = false;
      $("explain-result").replaceChildren(el("p", { class: "problem-inline" }, `Not explained: ${got.body.error || `HTTP ${got.res.status}`}`));
      return;
    }
    renderExplain(ctx, got.body);
  }

  let wired = false;
  function wire(ctx) {
    if (wired) return;
    wired = true;
    $("explain-form").addEventListener("submit", (ev) => { ev.preventDefault(); explain(ctx); });
  }

  window.threadlineViews = Object.assign(window.threadlineViews || {}, {
    rules: { refresh(ctx) { el = ctx.el; wire(ctx); return configurations(ctx); }, leave() { seen = ""; } },
  });
})();
