(function () {
  "use strict";
  const { api, el, showError } = nd;
  async function load() {
    try {
      const users = await api("GET", "/api/users");
      document.querySelector("#users-table tbody").replaceChildren(...users.map((u) => {
        const role = el("select", { "data-testid": "user-role-select", "aria-label": `role of ${u.name}` }, ["viewer", "operator", "admin"].map((r) => el("option", { value: r, selected: r === u.role, text: r })));
        role.addEventListener("change", () => change(u.name, { role: role.value }));
        return el("tr", { "data-user": u.name },
          el("td", { text: u.name }), el("td", {}, role), el("td", { class: "nowrap", "data-testid": "user-created", text: nd.time(u.created_at) }),
          el("td", { class: "nowrap", "data-testid": "user-updated", text: nd.time(u.updated_at) }),
          el("td", {}, u.must_change_password ? el("span", { class: "badge bad", text: "must change password" }) : null),
          el("td", {},
            el("button", { type: "button", "data-testid": "user-password-reset", onclick: () => { const p = prompt(`New password for ${u.name} (8+ characters)`); if (p) change(u.name, { password: p }); }, text: "Set password" }),
            " ",
            el("button", { type: "button", "data-testid": "user-remove", onclick: () => remove(u.name), text: "Remove" })));
      }));
    } catch (error) { showError("users-error", error); }
  }
  async function change(name, body) {
    try { await api("PATCH", `/api/users/${encodeURIComponent(name)}`, body); showError("users-error", null); } catch (error) { showError("users-error", error); }
    load();
  }
  async function remove(name) {
    if (!confirm(`Remove user ${name}?`)) return;
    try { await api("DELETE", `/api/users/${encodeURIComponent(name)}`); showError("users-error", null); } catch (error) { showError("users-error", error); }
    load();
  }
  document.getElementById("user-add").addEventListener("submit", (event) => {
    event.preventDefault();
    nd.busy(document.getElementById("user-add-submit"), () => add(event));
  });
  async function add(event) {
    const body = { name: document.getElementById("user-name").value, password: document.getElementById("user-password").value, role: document.getElementById("user-role").value };
    try { await api("POST", "/api/users", body); showError("users-error", null); event.target.reset(); } catch (error) { showError("users-error", error); }
    await load();
  }
  load();
})();
