(function () {
  "use strict";
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = document.getElementById("login-user").value;
    const password = document.getElementById("login-password").value;
    try {
      await nd.api("POST", "/api/auth/login", { user, password });
      location.href = form.dataset.next || "/";
    } catch (error) {
      nd.showError("login-error", error);
    }
  });
})();
