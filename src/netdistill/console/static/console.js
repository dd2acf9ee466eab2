// Shared helpers of the console pages: API calls with the session's CSRF token, element
// building, number and time formats (times are shown in UTC, always), busy states for
// buttons, and the time-range picker. Every page script uses window.nd.
(function () {
  "use strict";
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { "x-csrf-token": csrf() } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401 && !url.startsWith("/api/auth/login")) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("not logged in");
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      let detail = data && (data.detail || data.error) ? (data.detail || data.error) : data;
      if (Array.isArray(detail)) detail = detail.map((d) => (d && d.msg) ? `${(d.loc || []).slice(1).join(".")}: ${d.msg}` : d).join("; ");
      if (detail && typeof detail === "object") detail = JSON.stringify(detail);
      const error = new Error(String(detail || response.statusText));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function scaled(n, units, base) {
    let i = 0;
    n = Number(n) || 0;
    while (Math.abs(n) >= base && i < units.length - 1) { n /= base; i++; }
    const digits = Math.abs(n) >= 100 || i === 0 ? 0 : 1;
    return n.toFixed(i === 0 && Number.isInteger(n) ? 0 : digits) + " " + units[i];
  }
  const bytes = (n) => scaled(n, ["B", "kB", "MB", "GB", "TB", "PB"], 1000);
  const bits = (n) => scaled(n, ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"], 1000);
  const pps = (n) => scaled(n, ["pkt/s", "kpkt/s", "Mpkt/s", "Gpkt/s"], 1000);
  const count = (n) => (Number(n) || 0).toLocaleString("en-US");

  // "2026-11-23T09:00:00.123Z" → "2026-11-23 09:00:00 UTC" (seconds: false drops them)
  function time(value, seconds = true) {
    if (!value) return "–";
    const d = value instanceof Date ? value : new Date(value);
    if (isNaN(d)) return String(value);
    const s = d.toISOString();
    return s.slice(0, 10) + " " + s.slice(11, seconds ? 19 : 16) + " UTC";
  }

  function showError(id, error) {
    const node = document.getElementById(id);
    if (!node) return;
    node.hidden = !error;
    node.textContent = error ? String(error.message || error) : "";
  }

  // run `work` with `button` disabled and spinning; the label stays for screen readers
  async function busy(button, work) {
    if (!button) return work();
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    try { return await work(); } finally {
      button.removeAttribute("aria-busy");
      button.disabled = false;
    }
  }

  function role() { return document.getElementById("main").dataset.role || ""; }
  function canChange() { return role() === "operator" || role() === "admin"; }

  // ---- the time-range picker --------------------------------------------------------
  // state: {minutes} (back from now) or {from, to} (ISO, UTC). Presets plus a custom
  // range whose inputs are in UTC. onChange(state) after each change.
  const PRESETS = [["15", "Last 15 minutes"], ["60", "Last hour"], ["360", "Last 6 hours"], ["1440", "Last 24 hours"], ["10080", "Last 7 days"], ["43200", "Last 30 days"], ["custom", "Custom range (UTC)…"]];
  const local = (iso) => iso ? new Date(iso).toISOString().slice(0, 16) : "";
  function timeRange(container, initial, onChange) {
    const state = Object.assign({ minutes: 60 }, initial || {});
    const select = el("select", { "data-testid": "range-preset", "aria-label": "time range" },
      PRESETS.map(([v, label]) => el("option", { value: v, text: label })));
    const from = el("input", { type: "datetime-local", "data-testid": "range-from", "aria-label": "from (UTC)" });
    const to = el("input", { type: "datetime-local", "data-testid": "range-to", "aria-label": "to (UTC)" });
    const apply = el("button", { type: "button", "data-testid": "range-apply", text: "Apply" });
    const custom = el("span", { class: "filters" }, el("label", {}, "from (UTC)", from), el("label", {}, "to (UTC)", to), apply);
    function show() {
      const isCustom = !!state.from;
      select.value = isCustom ? "custom" : String(state.minutes);
      if (!isCustom && select.value !== String(state.minutes)) {
        select.append(el("option", { value: String(state.minutes), text: `Last ${state.minutes} minutes` }));
        select.value = String(state.minutes);
      }
      custom.hidden = !isCustom;
      if (isCustom) { from.value = local(state.from); to.value = local(state.to); }
    }
    select.addEventListener("change", () => {
      if (select.value === "custom") {
        const end = new Date(), start = new Date(end.getTime() - (state.minutes || 60) * 60000);
        state.from = start.toISOString(); state.to = end.toISOString();
        show(); onChange(get());
        return;
      }
      delete state.from; delete state.to;
      state.minutes = Number(select.value);
      show(); onChange(get());
    });
    apply.addEventListener("click", () => {
      if (!from.value || !to.value) return;
      state.from = from.value + ":00Z"; state.to = to.value + ":00Z";
      onChange(get());
    });
    function get() { return state.from ? { from: state.from, to: state.to } : { minutes: state.minutes }; }
    function set(next) {
      delete state.from; delete state.to;
      Object.assign(state, next);
      show();
    }
    container.replaceChildren(el("label", {}, "Time range", select), custom);
    show();
    return { get, set, seconds: () => state.from ? (new Date(state.to) - new Date(state.from)) / 1000 : state.minutes * 60 };
  }

  // query string of a range and filters: {minutes} | {from, to}, ["field=value", …]
  function rangeQuery(range, filters, extra) {
    const q = new URLSearchParams();
    if (range.from) { q.set("from", range.from); q.set("to", range.to); } else q.set("minutes", range.minutes);
    for (const f of filters || []) q.append("filter", f);
    for (const [k, v] of Object.entries(extra || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    return q.toString();
  }

  // a bucket length giving about `target` buckets over `seconds`, on a round value
  function bucketFor(seconds, target = 90) {
    const steps = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    return steps.find((s) => seconds / s <= target) || 86400;
  }

  // a box that scrolls (a wide table, a diff, the records) must be reachable by keyboard:
  // it gets tabindex=0 while it overflows, and loses it when it no longer does
  const SCROLLERS = ".table-wrap, pre, .graph-box";
  const sizes = new ResizeObserver((entries) => entries.forEach((e) => keyboardScroll(e.target)));
  function keyboardScroll(box) {
    if (box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1) box.setAttribute("tabindex", "0");
    else if (box.getAttribute("tabindex") === "0") box.removeAttribute("tabindex");
  }
  function watch(root) {
    for (const box of root.querySelectorAll(SCROLLERS)) { sizes.observe(box); keyboardScroll(box); }
  }
  const main = document.getElementById("main");
  if (main) {
    watch(main);
    new MutationObserver(() => watch(main)).observe(main, { childList: true, subtree: true });
  }

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      try { await api("POST", "/api/auth/logout"); } finally { location.href = "/login"; }
    });
  }
  window.nd = { api, el, bytes, bits, pps, count, time, showError, busy, role, canChange, csrf, timeRange, rangeQuery, bucketFor };
})();
