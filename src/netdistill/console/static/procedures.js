// Procedures: each with its state, trigger, field enhancements in the seed notation,
// links to the builder per field, and its block diagram.
(function () {
  "use strict";
  const { api, el, showError, canChange } = nd;

  async function toggle(procedure) {
    const action = procedure.enabled ? "disable" : "enable";
    try {
      await api("POST", `/api/procedures/${encodeURIComponent(procedure.name)}/${action}`);
      await load();
    } catch (error) { showError("proc-error", error); }
  }

  function card(p) {
    const graph = el("div", { class: "graph-box" });
    const fields = Object.keys(p.fields || {}).sort();
    const node = el("section", { class: "card", "data-testid": "procedure-" + p.name, "data-procedure": p.name },
      el("h2", {}, p.name, " ",
        el("span", { class: "badge " + (p.enabled ? "ok" : ""), "data-testid": "procedure-state", text: p.enabled ? "enabled" : "disabled" }),
        canChange() ? el("button", { type: "button", "data-testid": "procedure-toggle", onclick: (e) => nd.busy(e.currentTarget, () => toggle(p)), text: p.enabled ? "Disable" : "Enable" }) : null),
      el("p", { class: "muted", text: `trigger ${p.trigger}` + (p.description ? " · " + p.description : "") }),
      el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "field" }), el("th", { text: "enhancement" }))),
        el("tbody", {}, fields.map((f) => el("tr", {},
          el("td", {}, el("a", { href: `/procedures/${encodeURIComponent(p.name)}/builder?field=${encodeURIComponent(f)}`, "data-testid": "builder-link", text: f })),
          el("td", {}, el("code", { text: p.fields[f] }))))))),
      el("p", {}, el("a", { class: "button", href: `/procedures/${encodeURIComponent(p.name)}/builder`, "data-testid": "builder-open", text: "Field enhancement builder →" })),
      graph);
    ndGraph.draw(graph, p).catch((error) => showError("proc-error", error));
    return node;
  }

  async function load() {
    const box = document.getElementById("procedures");
    try {
      const procedures = await api("GET", "/api/procedures");
      box.replaceChildren(...(procedures.length ? procedures.map(card) : [el("p", { class: "muted", text: "No procedures in the scheme." })]));
    } catch (error) {
      showError("proc-error", error.status === 404 ? new Error("this manager serves no procedures API") : error);
    }
  }
  load();
})();
