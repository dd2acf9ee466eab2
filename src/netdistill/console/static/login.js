(function () {
  "use strict";
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = document.getElementById("login-user").value;
    const password = document.getElementById("login-password").value;
    await nd.busy(document.getElementById("login-submit"), async () => {
      try {
        const me = await nd.api("POST", "/api/auth/login", { user, password });
        const next = form.dataset.next || "/";
        location.href = me.must_change_password ? "/password?next=" + encodeURIComponent(next) : next;
      } catch (error) {
        nd.showError("login-error", error);
      }
    });
  });
})();
