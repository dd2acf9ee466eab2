(function () {
  "use strict";
  const { api, el } = nd;
  api("GET", "/api/audit?limit=500").then((entries) => {
    document.querySelector("#audit-table tbody").replaceChildren(...entries.map((e) => el("tr", {},
      el("td", { class: "nowrap", text: nd.time(e.logged_at) }), el("td", { text: e.user_name }), el("td", {}, el("code", { text: e.action })),
      el("td", {}, el("code", { text: JSON.stringify(e.detail) })))));
  }).catch((error) => nd.showError("audit-error", error));
})();
