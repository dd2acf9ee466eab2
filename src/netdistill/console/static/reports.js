// Reports: listed from GET /api/reports, run and downloaded through
// GET /api/reports/{name}/run?from=&to=&format=csv|html|json (the reports API).
(function () {
  "use strict";
  const { api, el, showError } = nd;
  const iso = (d) => d.toISOString().slice(0, 16);
  function card(r) {
    const to = new Date(), from = new Date(to.getTime() - 24 * 3600 * 1000);
    const inputFrom = el("input", { type: "datetime-local", value: iso(from), "data-testid": "report-from" });
    const inputTo = el("input", { type: "datetime-local", value: iso(to), "data-testid": "report-to" });
    const links = el("span", {});
    const url = (format) => `/api/reports/${encodeURIComponent(r.name)}/run?from=${encodeURIComponent(inputFrom.value + ":00Z")}&to=${encodeURIComponent(inputTo.value + ":00Z")}&format=${format}`;
    const refreshLinks = () => links.replaceChildren(...["csv", "html", "json"].map((f) => el("a", { href: url(f), download: f !== "html" ? `${r.name}.${f}` : null, target: f === "html" ? "_blank" : null, "data-testid": `report-download-${r.name}-${f}`, text: f.toUpperCase() + " " })));
    inputFrom.addEventListener("change", refreshLinks);
    inputTo.addEventListener("change", refreshLinks);
    refreshLinks();
    return el("section", { class: "card", "data-report": r.name },
      el("h2", { text: r.title || r.name }), r.description ? el("p", { class: "muted", text: r.description }) : null,
      el("label", {}, "from (UTC) ", inputFrom), " ", el("label", {}, "to (UTC) ", inputTo), " ", links);
  }
  api("GET", "/api/reports").then((reports) => {
    const list = Array.isArray(reports) ? reports : (reports.reports || []);
    document.getElementById("reports").replaceChildren(...list.map(card));
  }).catch((error) => showError("reports-error", error.status === 404 ? new Error("this manager has no reports API yet") : error));
})();
