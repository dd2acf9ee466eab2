// The explorer: a time range and filters (FIELD=VALUE, FIELD!=VALUE) over records, the
// matching traffic over time, the top N values of any field (a click adds it as a
// filter: drill-down), and the matching records, newest first, with CSV export. The
// state lives in the URL (?minutes=|from=&to=, filter=…, by=, metric=, limit=, unit=,
// columns=), so a view can be bookmarked and the dashboard links into it. Every query
// is made by the server from field names it checks (/api/explore/*).
(function () {
  "use strict";
  const { api, el, bytes, count, showError, rangeQuery } = nd;
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const url = new URLSearchParams(location.search);
  const state = {
    filters: url.getAll("filter"),
    by: url.get("by") || "service",
    metric: url.get("metric") || "bytes",
    limit: Number(url.get("limit")) || 10,
    unit: url.get("unit") === "packets" ? "packets" : "bits",
    columns: url.get("columns") ? url.get("columns").split(",") : null,
    offset: 0,
  };
  const initialRange = url.get("from") ? { from: url.get("from"), to: url.get("to") } : { minutes: Number(url.get("minutes")) || 60 };
  const range = nd.timeRange($("explore-range"), initialRange, () => { state.offset = 0; refresh(); });
  let fields = [];
  let defaults = [];

  function save() {
    const extra = { by: state.by, metric: state.metric, limit: state.limit, unit: state.unit, columns: state.columns ? state.columns.join(",") : "" };
    history.replaceState(null, "", "/explore?" + rangeQuery(range.get(), state.filters, extra));
  }
  const columns = () => state.columns || defaults;

  function showFilters() {
    $("explore-filters").replaceChildren(...(state.filters.length ? state.filters.map((f, i) => el("span", { class: "chip", "data-testid": "filter-chip", "data-filter": f },
      f.replace(/(!=|<=|>=|=|<|>)/, (op) => " " + ({ "!=": "≠", "<=": "≤", ">=": "≥" }[op] || op) + " "),
      el("button", { type: "button", "aria-label": "remove filter " + f, "data-testid": "filter-remove", onclick: () => { state.filters.splice(i, 1); state.offset = 0; refresh(); } }, "×"))) : [el("span", { class: "muted", text: "No filter: every record in the range." })]));
  }

  function addFilter(text) {
    if (!state.filters.includes(text)) state.filters.push(text);
    state.offset = 0;
    refresh();
  }

  function fillTop(top) {
    $("explore-top-key").textContent = state.by;
    const max = Math.max(1, ...top.rows.map((r) => r[state.metric]));
    $("explore-top").tBodies[0].replaceChildren(...top.rows.map((r) => el("tr", {
      class: "clickable", tabindex: "0", "data-key": r.key, "data-testid": "explore-top-row",
      onclick: () => addFilter(`${state.by}=${r.key}`),
      onkeydown: (e) => { if (e.key === "Enter") addFilter(`${state.by}=${r.key}`); },
    },
    el("td", { class: "nowrap", text: r.key }), el("td", { class: "num", text: bytes(r.bytes) }), el("td", { class: "num", text: count(r.packets) }),
    el("td", { class: "num", text: count(r.records) }),
    el("td", {}, el("span", { class: "share", style: `width:${Math.max(2, Math.round(60 * r[state.metric] / max))}px` })))));
    const values = $("filter-values");
    if ($("filter-field").value === state.by) values.replaceChildren(...top.rows.map((r) => el("option", { value: r.key })));
  }

  function cell(name, value) {
    if (value === null || value === undefined) return el("td", { class: "muted", text: "–" });
    if (name.endsWith("_time") || name === "ingested_at") return el("td", { class: "nowrap", text: nd.time(value) });
    if (typeof value === "number") return el("td", { class: "num", text: name === "bytes" ? bytes(value) : String(value) });
    return el("td", { text: String(value) });
  }

  function fillRecords(answer) {
    $("explore-records").tHead.rows[0].replaceChildren(...answer.columns.map((c) => el("th", { class: ["bytes", "packets"].includes(c) ? "num" : null, text: c })));
    $("explore-records").tBodies[0].replaceChildren(...answer.rows.map((r) => el("tr", {}, answer.columns.map((c) => cell(c, r[c])))));
    const first = answer.total ? answer.offset + 1 : 0;
    $("explore-count").textContent = `${count(first)}–${count(answer.offset + answer.rows.length)} of ${count(answer.total)}, newest first`;
    $("explore-prev").disabled = answer.offset === 0;
    $("explore-next").disabled = answer.offset + answer.rows.length >= answer.total;
  }

  function fillColumns() {
    $("explore-columns").replaceChildren(...fields.map((f) => {
      const box = el("input", { type: "checkbox", value: f.name, checked: columns().includes(f.name) });
      box.addEventListener("change", () => {
        const now = columns().filter((c) => c !== f.name);
        if (box.checked) now.push(f.name);
        state.columns = fields.map((x) => x.name).filter((n) => now.includes(n));
        refresh();
      });
      return el("label", { class: "chip" }, box, f.name);
    }));
  }

  let lastSeries = null;
  async function refresh() {
    save();
    showFilters();
    const r = range.get();
    const q = (extra) => rangeQuery(r, state.filters, extra);
    $("explore-csv").href = "/api/explore/records?" + q({ format: "csv", limit: 100000, columns: columns().join(",") });
    $("explore-by-label").textContent = state.by;
    const buttons = [$("explore-prev"), $("explore-next")];
    buttons.forEach((b) => b.setAttribute("aria-busy", "true"));
    try {
      const [series, top, records] = await Promise.all([
        api("GET", "/api/explore/series?" + q({ by: state.by, metric: state.metric, top: 8, bucket_s: nd.bucketFor(range.seconds()) })),
        api("GET", "/api/explore/top?" + q({ by: state.by, metric: state.metric, limit: state.limit })),
        api("GET", "/api/explore/records?" + q({ limit: PAGE, offset: state.offset, columns: columns().join(",") })),
      ]);
      lastSeries = series;
      ndCharts.series("chart-explore", series, state.unit, (key) => { if (key !== "other") addFilter(`${state.by}=${key}`); });
      fillTop(top);
      fillRecords(records);
      showError("explore-error", null);
    } catch (error) {
      showError("explore-error", error);
    } finally { buttons.forEach((b) => b.removeAttribute("aria-busy")); }
  }

  $("explore-add").addEventListener("submit", (event) => {
    event.preventDefault();
    addFilter(`${$("filter-field").value}${$("filter-op").value}${$("filter-value").value}`);
    $("filter-value").value = "";
  });
  $("filter-field").addEventListener("change", async () => {
    const top = await api("GET", "/api/explore/top?" + rangeQuery(range.get(), state.filters, { by: $("filter-field").value, limit: 50 })).catch(() => ({ rows: [] }));
    $("filter-values").replaceChildren(...top.rows.map((r) => el("option", { value: r.key })));
  });
  $("explore-by").addEventListener("change", () => { state.by = $("explore-by").value; refresh(); });
  $("explore-metric").addEventListener("change", () => { state.metric = $("explore-metric").value; refresh(); });
  $("explore-limit").addEventListener("change", () => { state.limit = Math.min(1000, Math.max(1, Number($("explore-limit").value) || 10)); refresh(); });
  $("explore-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refresh(); });
  $("explore-next").addEventListener("click", () => { state.offset += PAGE; refresh(); });
  for (const u of ["bits", "packets"]) {
    $("unit-" + u).addEventListener("click", () => {
      state.unit = u;
      $("unit-bits").setAttribute("aria-pressed", String(u === "bits"));
      $("unit-packets").setAttribute("aria-pressed", String(u === "packets"));
      save();
      if (lastSeries) ndCharts.series("chart-explore", lastSeries, state.unit, (key) => addFilter(`${state.by}=${key}`));
    });
  }

  api("GET", "/api/explore/fields").then((answer) => {
    fields = answer.fields;
    defaults = answer.default_columns;
    const options = (chosen) => fields.map((f) => el("option", { value: f.name, text: f.name, selected: f.name === chosen }));
    $("explore-by").replaceChildren(...options(state.by));
    $("filter-field").replaceChildren(...options("account_id"));
    $("explore-metric").value = state.metric;
    $("explore-limit").value = state.limit;
    $("unit-bits").setAttribute("aria-pressed", String(state.unit === "bits"));
    $("unit-packets").setAttribute("aria-pressed", String(state.unit === "packets"));
    fillColumns();
    refresh();
  }).catch((error) => showError("explore-error", error));
})();
