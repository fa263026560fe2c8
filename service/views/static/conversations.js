// threadline dashboard: the conversations tab. The list (#/conversations) with its filters and
// pages, and one conversation (#/conversations/<id>): participants, lifecycle and deadline, the
// events that fed it, its dead letters, and its timeline — read from Twilio through
// /api/v1/conversations/<id>/communications each time it is shown (threadline stores no
// content, and this page keeps none once it is left). dashboard.js calls refresh(ctx, route)
// every few seconds; ctx holds the API with the token and the shared ways to answer.
"use strict";
(() => {
  const PAGE = 25;
  const TIMELINE_PAGES = 10;  // 10 × 100 communications: more than a page can usefully show
  const $ = (id) => document.getElementById(id);
  const state = { offset: 0, shown: null, stamp: null, timelineOk: false, configs: false };
  let el;  // ctx.el, set on each refresh

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "—");
  const pill = (text, kind) => el("span", { class: `pill ${kind || ""} st-${String(text).toLowerCase()}` }, text);
  const latest = (byChannel) => Object.values(byChannel || {}).filter(Boolean).sort().pop();
  const customers = (c) => c.participants.filter((p) => p.type === "CUSTOMER").map((p) => p.address).join(", ") || "—";

  async function getJSON(ctx, path, opts) {
    let res;
    try { res = await ctx.api(path, opts); } catch (e) { await ctx.unreachable(); return null; }
    const body = await res.json().catch(() => ({}));
    if (await ctx.refused(res, body)) return null;
    return { res, body };
  }

  // ---- the list ------------------------------------------------------------------------
  function filterQuery() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData($("conv-filters"))) {
      if (!v) continue;
      q.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : String(v).trim());
    }
    return q;
  }

  async function configurationChoices(ctx) {
    if (state.configs) return;
    const got = await getJSON(ctx, "/api/v1/configurations");
    if (!got || !got.res.ok) return;
    const sel = $("conv-configuration");
    for (const c of got.body.configurations || []) sel.append(el("option", { value: c.id }, c.displayName ? `${c.id} · ${c.displayName}` : c.id));
    state.configs = true;
  }

  async function list(ctx) {
    const q = filterQuery();
    const filtered = [...q.keys()].length > 0;
    q.set("limit", PAGE);
    q.set("offset", state.offset);
    const got = await getJSON(ctx, `/api/v1/conversations?${q}`);
    if (!got) return false;
    ctx.show("conversations");
    const tbody = $("conv-list").tBodies[0];
    const empty = $("conv-empty");
    if (!got.res.ok) {
      tbody.replaceChildren();
      empty.hidden = false;
      empty.textContent = `The list could not be read: ${got.body.error || `HTTP ${got.res.status}`}.`;
      return true;
    }
    const convs = got.body.conversations;
    tbody.replaceChildren(...convs.map((c) => {
      const href = `#/conversations/${encodeURIComponent(c.id)}`;
      const row = el("tr", { "data-conv-id": c.id, class: "link" },
        el("td", {}, el("a", { href }, when(c.createdAt))),
        el("td", {}, pill(c.status)),
        el("td", {}, c.channels.join(", ") || "—"),
        el("td", {}, customers(c)),
        el("td", {}, `${c.configurationId} · v${c.configurationVersion}`),
        el("td", {}, when(latest(c.lastActivity))));
      row.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.hash = href; });
      return row;
    }));
    empty.hidden = convs.length > 0;
    empty.textContent = state.offset > 0 ? "Nothing further back."
      : filtered ? "No conversation matches these filters."
        : "No conversation yet: they appear here, within seconds, as traffic is captured.";
    $("conv-newer").disabled = state.offset === 0;
    $("conv-older").disabled = got.body.next === undefined;
    $("conv-page").textContent = convs.length ? `${state.offset + 1}–${state.offset + convs.length}` : "";
    $("conv-summary").textContent = filtered ? "filtered · newest first" : "newest first";
    await configurationChoices(ctx);
    return true;
  }

  // ---- one conversation ----------------------------------------------------------------
  function problem(title, text) {
    $("cd-body").hidden = true;
    $("cd-problem").hidden = false;
    $("cd-problem-title").textContent = title;
    $("cd-problem-text").textContent = text;
    return true;
  }

  function fact(term, ...value) { return [el("dt", {}, term), el("dd", {}, ...value)]; }

  function deadline(c) {
    const t = c.timers || {};
    if (c.status === "CLOSED") return `Closed${c.closedReason ? ` (${c.closedReason})` : ""}: it takes no more traffic; the key's next event starts a new conversation.`;
    if (c.status === "CREATING") return "Being created in v2: the next event of this key joins it.";
    if (!t.next || !t.nextAt) return "No deadline armed yet.";
    const secs = Math.max(0, Math.round((new Date(t.nextAt) - Date.now()) / 1000));
    return `Goes ${t.next} at ${clock(t.nextAt)} (in ${secs} s) unless traffic arrives first.`;
  }

  function renderFacts(c) {
    $("cd-status").textContent = c.status;
    $("cd-status").className = `pill st-${c.status.toLowerCase()}`;
    $("cd-facts").replaceChildren(
      ...fact("id", el("code", {}, c.id)),
      ...fact("v2 id", el("code", {}, c.twilioConversationId || "— (not created yet)")),
      ...fact("configuration", el("a", { href: "#/rules" }, c.configurationId), ` · version ${c.configurationVersion}`),
      ...fact("grouping", c.groupingType),
      ...fact("grouping key", el("code", {}, c.groupingKey)),
      ...fact("created", when(c.createdAt)),
      ...fact("last activity", ...Object.entries(c.lastActivity || {}).map(([ch, at]) => el("div", {}, `${ch} ${when(at)}`))),
      ...(c.flagged ? fact("flagged", JSON.stringify(c.flagged)) : []));
    $("cd-deadline").textContent = deadline(c);
    const btn = $("cd-close");
    btn.disabled = c.status === "CLOSED" || c.status === "CREATING";
    btn.title = btn.disabled ? `already ${c.status}` : "PATCH {status: CLOSED} to v2, then out of grouping";
    $("cd-participants").tBodies[0].replaceChildren(...c.participants.map((p) => el("tr", {},
      el("td", {}, pill(p.type)), el("td", {}, p.channel), el("td", {}, el("code", {}, p.address)))));
    $("cd-dead").replaceChildren(...(c.deadLetters || []).map((d) => el("li", {},
      el("a", { href: `#/dead/${encodeURIComponent(d.id)}` }, d.id), " ", pill(d.reason, "bad"), ` ${when(d.deadAt)}`)));
    if (!(c.deadLetters || []).length) $("cd-dead").replaceChildren(el("li", { class: "empty" }, "none: nothing of this key was dead-lettered"));
  }

  function contentText(content) {
    if (!content) return "";
    return content.text != null ? content.text : JSON.stringify(content);
  }

  function renderTimeline(c, comms) {
    const types = Object.fromEntries(c.participants.map((p) => [p.participantId, p.type]));
    // In the order they happened. Twilio dates a message to the second (a status callback's
    // message is dated by the Messages API), so within one second v2's own order — the order
    // threadline delivered them, which is the order their webhooks came — decides.
    const second = (m) => String(m.occurredAt || m.createdAt || "").slice(0, 19);
    const ordered = comms.map((m, i) => [m, i])
      .sort(([a, i], [b, j]) => second(a).localeCompare(second(b)) || i - j).map(([m]) => m);
    $("cd-timeline").replaceChildren(...ordered.map((m) => {
      const who = m.author || {};
      return el("li", { class: "comm", "data-comm-id": m.id },
        el("div", { class: "meta" },
          el("time", { datetime: m.occurredAt || "" }, when(m.occurredAt || m.createdAt)),
          pill(who.channel || "?"), el("b", {}, types[who.participantId] || "author"), " ", el("code", {}, who.address || "")),
        el("div", { class: "text" }, contentText(m.content)),
        el("div", { class: "recipients" }, ...(m.recipients || []).map((r) => el("span", { class: "recipient" },
          "→ ", el("code", {}, r.address || ""), " ", pill(r.deliveryStatus || "no status", "delivery")))));
    }));
    if (!ordered.length) $("cd-timeline").replaceChildren(el("li", { class: "empty" }, "No communication yet."));
    $("cd-events").replaceChildren(...ordered.map((m) => el("li", {},
      pill((m.author || {}).channel || "?"), " ", el("code", {}, m.resourceId || m.id), ` ${clock(m.occurredAt || m.createdAt)}`)));
    if (!ordered.length) $("cd-events").replaceChildren(el("li", { class: "empty" }, "none yet"));
  }

  function timelineProblem(text) {
    const p = $("cd-timeline-problem");
    p.hidden = !text;
    p.textContent = text || "";
    if (text) {
      $("cd-timeline").replaceChildren();
      $("cd-events").replaceChildren(el("li", { class: "empty" }, "unknown while the timeline cannot be read"));
    }
  }

  async function timeline(ctx, c) {
    const comms = [];
    let token = "";
    for (let i = 0; i < TIMELINE_PAGES; i++) {
      const got = await getJSON(ctx, `/api/v1/conversations/${encodeURIComponent(c.id)}/communications?pageSize=100${token ? `&pageToken=${encodeURIComponent(token)}` : ""}`);
      if (!got) return false;
      if (!got.res.ok) {
        const b = got.body;
        const v2 = b.v2Status ? ` Twilio answered ${b.v2Status}.` : b.detail ? ` (${b.detail})` : "";
        timelineProblem(`The timeline could not be read from Twilio: ${b.error || `HTTP ${got.res.status}`}.${v2} It is fetched again on the next refresh.`);
        return false;
      }
      comms.push(...got.body.communications);
      token = got.body.next;
      if (!token) break;
    }
    timelineProblem(null);
    renderTimeline(c, comms);
    return true;
  }

  async function detail(ctx, id) {
    const got = await getJSON(ctx, `/api/v1/conversations/${encodeURIComponent(id)}`);
    if (!got) return false;
    ctx.show("conversation");
    if (got.res.status === 404) {
      return problem(`No conversation “${id}”`, "threadline has no conversation with this id (its own tlc_… id or v2's conv_conversation_… id). It may never have existed, or it was closed and removed after the retention period.");
    }
    if (!got.res.ok) return problem(`The conversation could not be read (HTTP ${got.res.status})`, got.body.error || "");
    const c = got.body;
    $("cd-problem").hidden = true;
    $("cd-body").hidden = false;
    renderFacts(c);
    // The timeline is Twilio's: read again while the conversation can change, or when it did.
    const stamp = `${c.status}|${c.updatedAt}`;
    if (state.shown !== c.id || !state.timelineOk || c.status !== "CLOSED" || state.stamp !== stamp) {
      if (state.shown !== c.id) { $("cd-timeline").replaceChildren(); $("cd-events").replaceChildren(); }
      state.shown = c.id;
      state.stamp = stamp;
      state.timelineOk = await timeline(ctx, c);
    }
    return true;
  }

  async function close(ctx) {
    const id = state.shown;
    if (!id) return;
    $("cd-close").disabled = true;
    const got = await getJSON(ctx, `/api/v1/conversations/${encodeURIComponent(id)}`, {
      method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ status: "CLOSED" }) });
    if (!got) return;
    if (got.res.ok) ctx.toast("Conversation closed in v2: the key's next event starts a new one");
    else ctx.toast(`Not closed: ${got.body.error || `HTTP ${got.res.status}`}`, true);
    state.stamp = null;
    await ctx.refresh();
  }

  // ---- wiring ----------------------------------------------------------------------------
  let wired = false;
  function wire(ctx) {
    if (wired) return;
    wired = true;
    $("conv-filters").addEventListener("submit", (ev) => { ev.preventDefault(); state.offset = 0; ctx.refresh(); });
    $("conv-filters").addEventListener("reset", () => { state.offset = 0; setTimeout(() => ctx.refresh(), 0); });
    $("conv-newer").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); ctx.refresh(); });
    $("conv-older").addEventListener("click", () => { state.offset += PAGE; ctx.refresh(); });
    $("cd-close").addEventListener("click", () => close(ctx));
  }

  function leave() {
    state.shown = null;
    state.stamp = null;
    state.timelineOk = false;
    $("cd-timeline").replaceChildren();  // no message text lingers in the page once it is left
    $("cd-events").replaceChildren();
  }

  window.threadlineViews = Object.assign(window.threadlineViews || {}, {
    conversations: { refresh(ctx) { el = ctx.el; wire(ctx); return list(ctx); }, leave },
    conversation: { refresh(ctx, r) { el = ctx.el; wire(ctx); return detail(ctx, r.id); }, leave },
  });
})();
