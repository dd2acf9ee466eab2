// The scheme screens: a section's entries and its YAML editor (CodeMirror 6, vendored:
// line numbers, YAML highlighting; Validate, Preview diff, Apply through /api/scheme,
// each busy while it runs), and the versions page (compare two, roll back). Diffs are
// drawn line by line, coloured: added, removed, hunk headers.
(function () {
  "use strict";
  const { api, el, role } = nd;
  const $ = (id) => document.getElementById(id);

  function showSummary(summary) {
    const box = $("scheme-summary");
    const sections = Object.entries(summary || {});
    if (!sections.length) { box.replaceChildren(el("p", { class: "muted", text: "no change" })); return; }
    box.replaceChildren(el("div", { class: "table-wrap" }, el("table", { "data-testid": "scheme-summary-table" },
      el("thead", {}, el("tr", {}, el("th", { text: "section" }), el("th", { text: "added" }), el("th", { text: "removed" }), el("th", { text: "changed" }))),
      el("tbody", {}, sections.map(([name, s]) => el("tr", { "data-section": name },
        el("td", { text: name }), el("td", { text: (s.added || []).join(", ") }),
        el("td", { text: (s.removed || []).join(", ") }), el("td", { text: (s.changed || []).join(", ") })))))));
  }

  // a unified diff, one span per line (the text keeps its newlines)
  function showDiff(text) {
    const lines = (text || "").split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    $("scheme-diff-text").replaceChildren(...lines.map((line) => {
      const kind = line.startsWith("+++") || line.startsWith("---") ? "meta" : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "";
      return el("span", { class: kind || null, text: line + "\n" });
    }));
  }

  // a setting's value as nested key: value lines (not one line of JSON)
  function kv(value) {
    if (value === null || typeof value !== "object") return el("code", { text: value === null ? "null" : String(value) });
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    if (!entries.length) return el("code", { text: Array.isArray(value) ? "[]" : "{}" });
    if (Array.isArray(value) && value.every((v) => v === null || typeof v !== "object")) return el("code", { text: value.join(", ") });
    // unset settings (null, "", {}, []) are left out: the editor shows the whole text
    const set = entries.filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" && !Object.keys(v).length));
    if (!set.length) return el("span", { class: "muted", text: "defaults" });
    const nested = (v) => v !== null && typeof v === "object" && !(Array.isArray(v) && v.every((x) => x === null || typeof x !== "object"));
    return el("dl", { class: "kv" }, set.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { class: nested(v) ? "nested" : null }, kv(v))]));
  }

  // ---- a section screen ---------------------------------------------------------------
  const holder = $("scheme-section");
  if (holder) {
    const section = holder.dataset.section;
    const screen = holder.dataset.screen;
    let original = "";
    const editor = window.NDEditor.create($("scheme-editor-box"), "", { label: `the ${section} section, YAML`, testid: "scheme-editor" });
    window.ndSchemeEditor = editor;  // for the browser tests: .value get/set
    editor.view.scrollDOM.setAttribute("tabindex", "0");  // a scrolled box reachable by keyboard
    editor.view.scrollDOM.setAttribute("aria-label", `the ${section} section, scrolled`);

    function entryRows(scheme) {
      if (screen === "retention") {
        return Object.entries(scheme.manager).map(([k, v]) => el("tr", { "data-key": k }, el("td", { text: k }), el("td", {}, kv(v))));
      }
      const wanted = ($("scheme-type-filter") || {}).value || "";
      return (scheme[section] || []).filter((e) => !wanted || e.type === wanted).map((e) => {
        const { name, type, ...rest } = e;
        return el("tr", { "data-entry": name }, el("td", { class: "nowrap" }, el("b", { text: name })), el("td", { class: "nowrap", text: type || "" }), el("td", {}, kv(rest)));
      });
    }

    let current = null;
    async function load() {
      current = await api("GET", "/api/scheme");
      $("scheme-version").textContent = current.version;
      document.querySelector("#scheme-entries tbody").replaceChildren(...entryRows(current.scheme));
      const part = await api("GET", `/api/scheme/section/${section}`);
      original = part.yaml;
      editor.value = original;
      holder.dataset.loaded = "true";
    }

    function report(answer, done) {
      const offset = answer.section_line || 1;
      $("scheme-problems").replaceChildren(...(answer.problems || []).map((p) => {
        const m = /:(\d+):(\d+): /.exec(p);
        const line = m ? Number(m[1]) - offset + 1 : 0;
        const item = el("li", { "data-testid": "scheme-problem", text: line > 0 ? `${p} (editor line ${line})` : p });
        if (line > 0) { item.style.cursor = "pointer"; item.title = "go to the line"; item.addEventListener("click", () => editor.gotoLine(line)); }
        return item;
      }));
      $("scheme-status").textContent = done;
      $("scheme-status").className = "status-line " + (answer.ok === false ? "bad" : "ok");
    }

    async function send(button, method, url, extra) {
      const body = { section, yaml: editor.value, ...extra };
      $("scheme-status").textContent = "";
      return nd.busy(button, async () => {
        try { return await api(method, url, body); } catch (error) {
          // a 400 carries check-config's problems (joined by nd.api); any other refusal
          // (403 role, 409 restart) is one message, which may itself hold "; "
          const problems = error.status === 400 ? error.message.split("; ") : [error.message];
          report({ ok: false, problems }, `refused (${error.status})`);
          return null;
        }
      });
    }

    $("scheme-validate").addEventListener("click", async (event) => {
      const answer = await send(event.currentTarget, "POST", "/api/scheme/validate");
      if (answer) report(answer, answer.ok ? "valid" : "invalid");
    });
    $("scheme-diff").addEventListener("click", async (event) => {
      const answer = await send(event.currentTarget, "POST", "/api/scheme/diff");
      if (!answer) return;
      report(answer, answer.ok ? (answer.restart_needed.length ? "needs a restart: " + answer.restart_needed.join("; ") : "diff against version " + answer.version) : "invalid");
      showDiff(answer.diff || "");
      if (answer.ok) showSummary(answer.summary);
    });
    $("scheme-apply").addEventListener("click", async (event) => {
      const answer = await send(event.currentTarget, "PUT", "/api/scheme", { comment: $("scheme-comment").value });
      if (!answer) return;
      report({ ok: true }, `applied: version ${answer.version}`);
      showDiff(answer.diff || "");
      showSummary(answer.summary);
      await load();
    });
    $("scheme-reset").addEventListener("click", () => { editor.value = original; });
    const filter = $("scheme-type-filter");
    if (filter) filter.addEventListener("change", () => {
      document.querySelector("#scheme-entries tbody").replaceChildren(...entryRows(current.scheme));
    });
    if (holder.dataset.applyRole === "admin" && role() !== "admin") $("scheme-apply").disabled = true;
    load().catch((error) => report({ ok: false, problems: [error.message] }, "could not load"));
  }

  // ---- the versions page --------------------------------------------------------------
  const versions = $("scheme-versions");
  if (versions) {
    async function load() {
      const list = await api("GET", "/api/scheme/versions");
      versions.querySelector("tbody").replaceChildren(...list.map((v, i) => el("tr", { "data-version": v.version },
        el("td", { text: v.version }), el("td", { class: "nowrap", text: nd.time(v.saved_at) }), el("td", { text: v.user_name }),
        el("td", { text: v.comment }),
        el("td", {}, el("input", { type: "radio", name: "from", value: v.version, checked: i === 1, "aria-label": `compare from version ${v.version}`, "data-testid": `scheme-from-${v.version}` })),
        el("td", {}, el("input", { type: "radio", name: "to", value: v.version, checked: i === 0, "aria-label": `compare to version ${v.version}`, "data-testid": `scheme-to-${v.version}` })),
        el("td", {}, i > 0 && nd.canChange() ? el("button", { type: "button", "data-testid": `scheme-rollback-${v.version}`, text: "Roll back to this", onclick: (e) => rollback(e.currentTarget, v.version) }) : null))));
    }
    async function rollback(button, version) {
      if (!confirm(`Apply version ${version} again (as a new version)?`)) return;
      await nd.busy(button, async () => {
        try {
          const answer = await api("POST", `/api/scheme/rollback/${version}`);
          nd.showError("scheme-error", null);
          showSummary(answer.summary);
          showDiff(answer.diff);
        } catch (error) { nd.showError("scheme-error", error); }
      });
      load();
    }
    $("scheme-compare").addEventListener("click", async (event) => {
      const from = (document.querySelector('input[name="from"]:checked') || {}).value;
      const to = (document.querySelector('input[name="to"]:checked') || {}).value;
      if (!from || !to) return;
      await nd.busy(event.currentTarget, async () => {
        try {
          const answer = await api("GET", `/api/scheme/versions/${from}/diff/${to}`);
          nd.showError("scheme-error", null);
          showSummary(answer.summary);
          showDiff(answer.diff || "(identical)");
        } catch (error) { nd.showError("scheme-error", error); }
      });
    });
    load().catch((error) => nd.showError("scheme-error", error));
  }
})();
