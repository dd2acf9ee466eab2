// Licences (admin): the edition, limits and their use, installed licences; install and
// uninstall through /api/licences (licence/api.py).
(function () {
  "use strict";
  const { api, el, showError } = nd;
  async function load() {
    try {
      const o = await api("GET", "/api/licences");
      document.getElementById("licences-edition").textContent = o.edition;
      document.getElementById("licences-install-id").textContent = o.install_id;
      document.getElementById("licences-features").textContent = o.features.join(", ");
      const ro = document.getElementById("licences-read-only");
      ro.hidden = !o.read_only; ro.textContent = o.read_only;
      const refused = (item) => {
        if (item === "gatherer") return Object.values(o.refused_gatherers).length;
        const byExporter = o.refused_exporters[item.replace("exporter:", "")] || {};
        return Object.keys(byExporter).length;
      };
      document.querySelector("#licences-usage tbody").replaceChildren(...Object.entries(o.usage).map(([item, u]) =>
        el("tr", { "data-item": item },
          el("td", { text: item }),
          el("td", { class: "num" + (u.admitted > u.limit ? " bad" : ""), text: u.admitted }),
          el("td", { class: "num", text: u.limit }),
          el("td", { class: "num" + (refused(item) ? " bad" : ""), text: refused(item) }))));
      document.querySelector("#licences-table tbody").replaceChildren(...o.licences.map((l) =>
        el("tr", { "data-licence": l.licence_id },
          el("td", { text: l.licence_id }), el("td", { text: l.customer }),
          el("td", { class: l.state === "valid" ? "ok" : "bad", text: l.state }),
          el("td", { text: l.valid_from }), el("td", { text: l.expires_at }), el("td", { text: l.grace_ends_at }),
          el("td", { class: "num", text: l.gatherers }),
          el("td", { text: Object.entries(l.exporters).map(([k, n]) => `${k}=${n}`).join(", ") }),
          el("td", { text: (l.features || []).join(", ") }),
          el("td", {}, el("button", { type: "button", "data-testid": "licence-remove", onclick: () => remove(l.licence_id), text: "Uninstall" })))));
    } catch (error) { showError("licences-error", error); }
  }
  async function remove(id) {
    if (!confirm(`Uninstall licence ${id}?`)) return;
    try { await api("DELETE", `/api/licences/${encodeURIComponent(id)}`); showError("licences-error", null); } catch (error) { showError("licences-error", error); }
    load();
  }
  document.getElementById("licence-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) document.getElementById("licence-text").value = await file.text();
  });
  document.getElementById("licence-add").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/api/licences", { text: document.getElementById("licence-text").value });
      showError("licences-error", null); event.target.reset();
    } catch (error) { showError("licences-error", error); }
    load();
  });
  load();
})();
