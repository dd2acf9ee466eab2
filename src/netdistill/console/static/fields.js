(function () {
  "use strict";
  const { api, el, showError, canChange } = nd;
  async function load() {
    try {
      const fields = await api("GET", "/api/fields");
      document.querySelector("#fields-table tbody").replaceChildren(...fields.map((f) => el("tr", { "data-field": f.name },
        el("td", { text: f.id }), el("td", { text: f.name }), el("td", { text: f.type }),
        el("td", { text: f.standard ? "yes" : "" }), el("td", { text: f.description || "" }),
        el("td", {}, canChange() && !f.standard ? el("button", { type: "button", class: "danger", "data-testid": "field-drop", onclick: () => drop(f.name), text: "Drop" }) : null))));
    } catch (error) { showError("fields-error", error); }
  }
  async function drop(name) {
    if (!confirm(`Drop field ${name}? Its values are deleted.`)) return;
    try { await api("DELETE", `/api/fields/${encodeURIComponent(name)}`); showError("fields-error", null); } catch (error) { showError("fields-error", error); }
    load();
  }
  document.getElementById("field-add").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: document.getElementById("field-name").value, type: document.getElementById("field-type").value, description: document.getElementById("field-description").value };
    try { await api("POST", "/api/fields", body); showError("fields-error", null); event.target.reset(); } catch (error) { showError("fields-error", error); }
    load();
  });
  load();
})();
