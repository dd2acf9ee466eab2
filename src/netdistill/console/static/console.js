// Shared helpers of the console pages: API calls with the session's CSRF token,
// element building, number formats. Every page script uses window.nd.
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
      const detail = data && (data.detail || data.error) ? (data.detail || data.error) : data;
      const error = new Error(Array.isArray(detail) ? detail.join("; ") : String(detail));
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

  function bytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let i = 0;
    n = Number(n) || 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function showError(id, error) {
    const node = document.getElementById(id);
    if (!node) return;
    node.hidden = !error;
    node.textContent = error ? String(error.message || error) : "";
  }

  function role() { return document.getElementById("main").dataset.role || ""; }
  function canChange() { return role() === "operator" || role() === "admin"; }

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      try { await api("POST", "/api/auth/logout"); } finally { location.href = "/login"; }
    });
  }
  window.nd = { api, el, bytes, showError, role, canChange, csrf };
})();
