// Reports: every report of GET /api/reports with an input for each parameter it declares
// (times in UTC, choices as a list, numbers), an in-page preview (table and the report's
// chart) and downloads, all through GET /api/reports/{name}/run?…&format=json|csv|html.
// Operators write saved reports here: POST /api/reports, where the query sandbox checks
// the SQL at save time; its refusal is shown as it is.
(function () {
  "use strict";
  const { api, el, showError, canChange } = nd;
  const $ = (id) => document.getElementById(id);
  const PREVIEW_ROWS = 200;
  const iso = (d) => d.toISOString().slice(0, 16);
  const RELATIVE = /^now\s*(?:-\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$/;
  const UNIT = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

  // the value a parameter's input starts with (its default, "now-24h" made a time)
  function initial(p) {
    if (p.default === null || p.default === undefined) return "";
    if (p.type === "timestamp") {
      const m = RELATIVE.exec(String(p.default).toLowerCase());
      if (m) return iso(new Date(Date.now() - (m[1] ? Number(m[1]) * UNIT[m[2]] * 1000 : 0)));
      const d = new Date(String(p.default));
      return isNaN(d) ? "" : iso(d);
    }
    return String(p.default);
  }

  function input(r, p) {
    const testid = p.name === "from" || p.name === "to" ? `report-${p.name}` : `report-param-${p.name}`;
    const common = { "data-testid": testid, "data-param": p.name, id: `r-${r.name}-${p.name}`, required: p.required || null };
    let control;
    if (p.choices) {
      control = el("select", common, (p.default === null || p.default === undefined ? [el("option", { value: "", text: "all" })] : []).concat(p.choices.map((c) => el("option", { value: c, text: c, selected: c === p.default }))));
    } else if (p.type === "timestamp") {
      control = el("input", { ...common, type: "datetime-local", value: initial(p) });
    } else if (p.type === "int" || p.type === "float") {
      control = el("input", { ...common, type: "number", step: p.type === "int" ? "1" : "any", value: initial(p), placeholder: p.required ? null : (p.default === null ? "any" : null), style: "width:8em" });
    } else {
      control = el("input", { ...common, value: initial(p), placeholder: p.required ? null : (p.default === null || p.default === undefined ? "all" : null) });
    }
    const label = p.name + (p.type === "timestamp" ? " (UTC)" : "") + (p.required ? " *" : "");
    return el("label", { for: common.id, title: p.description || null }, label, control);
  }

  function runUrl(r, card, format) {
    const q = new URLSearchParams();
    for (const control of card.querySelectorAll("[data-param]")) {
      const name = control.dataset.param, value = control.value;
      if (value === "") continue;
      const param = r.params.find((p) => p.name === name);
      const text = param.type === "timestamp" ? value + ":00Z" : value;
      if (name === "from" || name === "to") q.set(name, text); else q.append("param", `${name}=${text}`);
    }
    q.set("format", format);
    return `/api/reports/${encodeURIComponent(r.name)}/run?${q}`;
  }

  function cellText(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value)) return nd.time(value);
    return typeof value === "number" ? value.toLocaleString("en-US") : String(value);
  }

  async function preview(r, card, button) {
    const box = card.querySelector(".preview");
    await nd.busy(button, async () => {
      try {
        const answer = await api("GET", runUrl(r, card, "json"));
        card.classList.add("span-12");
        card.classList.remove("span-6");
        const canvasId = `chart-report-${r.name}`;
        const shown = answer.rows.slice(0, PREVIEW_ROWS);
        box.replaceChildren(
          answer.note ? el("p", { class: "warning", "data-testid": "report-note", text: answer.note }) : null,
          answer.chart && answer.rows.length ? el("div", { class: "chart-box" }, el("canvas", { id: canvasId, "data-testid": "report-chart", role: "img", "aria-label": `${r.title} chart` })) : null,
          el("p", { class: "muted", "data-testid": "report-rows", text: `${answer.rows.length} row(s)` + (answer.rows.length > shown.length ? `, the first ${shown.length} shown: download for all` : "") }),
          el("div", { class: "table-wrap" }, el("table", { "data-testid": "report-preview" },
            el("thead", {}, el("tr", {}, answer.columns.map((c) => el("th", { text: c })))),
            el("tbody", {}, shown.map((row) => el("tr", {}, row.map((v) => el("td", { class: typeof v === "number" ? "num" : null, text: cellText(v) }))))))));
        if (answer.chart && answer.rows.length) {
          const objects = answer.rows.map((row) => Object.fromEntries(answer.columns.map((c, i) => [c, row[i]])));
          ndCharts.report(canvasId, answer.chart, objects);
        }
        showError(`report-error-${r.name}`, null);
      } catch (error) { showError(`report-error-${r.name}`, error); }
    });
  }

  function card(r) {
    const links = el("span", { class: "toolbar", style: "margin:0" });
    const node = el("section", { class: "card span-6", "data-report": r.name });
    const refreshLinks = () => links.replaceChildren(...["csv", "html", "json"].map((f) => el("a", {
      class: "button", href: runUrl(r, node, f), download: f !== "html" ? `${r.name}.${f}` : null, target: f === "html" ? "_blank" : null,
      rel: f === "html" ? "noopener" : null, "data-testid": `report-download-${r.name}-${f}`, text: f.toUpperCase(),
    })));
    const previewButton = el("button", { type: "button", class: "primary", "data-testid": `report-preview-${r.name}`, text: "Preview" });
    previewButton.addEventListener("click", () => preview(r, node, previewButton));
    const own = r.saved && canChange() ? [
      el("button", { type: "button", "data-testid": `report-edit-${r.name}`, text: "Edit", onclick: () => edit(r) }),
      el("button", { type: "button", class: "danger", "data-testid": `report-delete-${r.name}`, text: "Delete", onclick: (e) => remove(r, e.currentTarget) }),
    ] : [];
    node.append(...[
      el("h2", {}, r.title || r.name, el("span", { class: "muted", text: r.name }), r.saved ? el("span", { class: "badge", text: "saved" }) : null),
      r.description ? el("p", { class: "muted", text: r.description }) : null,
      el("div", { class: "filters" }, r.params.map((p) => input(r, p))),
      el("div", { class: "toolbar", style: "margin:.7rem 0 0" }, previewButton, links, ...own),
      el("p", { class: "error", id: `report-error-${r.name}`, role: "alert", hidden: true }),
      el("div", { class: "preview", "data-testid": `report-preview-box-${r.name}` })].filter(Boolean));
    node.addEventListener("change", refreshLinks);
    node.addEventListener("input", refreshLinks);
    refreshLinks();
    return node;
  }

  async function remove(r, button) {
    if (!confirm(`Delete the saved report ${r.name}?`)) return;
    await nd.busy(button, async () => {
      try { await api("DELETE", `/api/reports/${encodeURIComponent(r.name)}`); await load(); } catch (error) { showError("reports-error", error); }
    });
  }

  // ---- authoring -------------------------------------------------------------------
  const form = $("report-author");
  let declared = {};
  function paramsFromSql() {
    const names = [...new Set([...$("author-sql").value.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]))];
    $("author-params").tBodies[0].replaceChildren(...names.map((name) => {
      const known = declared[name] || (name === "from" ? { type: "timestamp", default: "now-24h" } : name === "to" ? { type: "timestamp", default: "now" } : { type: "string", default: "" });
      return el("tr", { "data-name": name },
        el("td", {}, el("code", { text: "$" + name })),
        el("td", {}, el("select", { "aria-label": `type of ${name}`, "data-field": "type" }, ["timestamp", "string", "int", "float"].map((t) => el("option", { text: t, selected: t === known.type })))),
        el("td", {}, el("input", { "aria-label": `default of ${name}`, "data-field": "default", value: known.default ?? "", placeholder: "none: all" })),
        el("td", {}, el("input", { "aria-label": `description of ${name}`, "data-field": "description", value: known.description || "" })));
    }));
  }
  function edit(r) {
    form.hidden = false;
    declared = Object.fromEntries(r.params.map((p) => [p.name, p]));
    $("author-name").value = r.name; $("author-title").value = r.title; $("author-description").value = r.description || "";
    $("author-sql").value = r.sql;
    $("author-chart").value = r.chart ? r.chart.kind : "";
    $("author-x").value = r.chart ? r.chart.x : ""; $("author-y").value = r.chart ? r.chart.y : ""; $("author-series").value = r.chart && r.chart.series ? r.chart.series : "";
    paramsFromSql();
    showError("author-error", null);
    form.scrollIntoView();
  }
  function definition() {
    const params = [...$("author-params").tBodies[0].rows].map((row) => {
      const get = (f) => row.querySelector(`[data-field="${f}"]`).value;
      const type = get("type"), raw = get("default");
      const value = raw === "" ? null : (type === "int" ? Number.parseInt(raw, 10) : type === "float" ? Number(raw) : raw);
      return { name: row.dataset.name, type, default: value, description: get("description") };
    });
    const body = { name: $("author-name").value.trim(), title: $("author-title").value.trim(), description: $("author-description").value.trim(), sql: $("author-sql").value, params };
    if ($("author-chart").value) body.chart = { kind: $("author-chart").value, x: $("author-x").value.trim(), y: $("author-y").value.trim(), series: $("author-series").value.trim() || null };
    return body;
  }
  $("report-new").addEventListener("click", () => { form.reset(); declared = {}; paramsFromSql(); form.hidden = false; showError("author-error", null); $("author-name").focus(); });
  $("author-cancel").addEventListener("click", () => { form.hidden = true; });
  $("author-sql").addEventListener("input", paramsFromSql);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = definition();
    const bad = body.params.find((p) => (p.type === "int" || p.type === "float") && p.default !== null && Number.isNaN(p.default));
    if (bad) { showError("author-error", new Error(`parameter ${bad.name}: the default is not a number`)); return; }
    await nd.busy($("author-save"), async () => {
      try {
        await api("POST", "/api/reports", body);
        showError("author-error", null);
        form.hidden = true;
        await load();
        const saved = document.querySelector(`[data-report="${CSS.escape(body.name)}"]`);
        if (saved) saved.scrollIntoView();
      } catch (error) { showError("author-error", error); }
    });
  });

  async function load() {
    try {
      const reports = await api("GET", "/api/reports");
      const list = Array.isArray(reports) ? reports : (reports.reports || []);
      $("reports").replaceChildren(...list.map(card));
      $("reports").dataset.loaded = "true";
    } catch (error) {
      showError("reports-error", error.status === 404 ? new Error("this manager has no reports API yet") : error);
    }
  }
  load();
})();
