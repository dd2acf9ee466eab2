// Change one's own password (POST /api/auth/password); after the first admin's forced
// change, go on to the page they asked for.
(function () {
  "use strict";
  const form = document.getElementById("password-form");
  const $ = (id) => document.getElementById(id);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if ($("password-new").value !== $("password-again").value) {
      nd.showError("password-error", new Error("the two new passwords differ"));
      return;
    }
    await nd.busy($("password-submit"), async () => {
      try {
        await nd.api("POST", "/api/auth/password", { old_password: $("password-old").value, new_password: $("password-new").value });
        location.href = form.dataset.next || "/";
      } catch (error) { nd.showError("password-error", error); }
    });
  });
})();
