// The field-enhancement builder (seed 001, "Defining Field Enhancements"): for one target
// field, step by step, "End" lists the outputs whose type matches the field and
// "Continue" the functions whose inputs fit; the chain so far is shown in the seed
// notation. The lists come from GET /api/procedures/{name}/options; saving goes through
// PUT /api/procedures/{name}, which refuses while the procedure is enabled.
//
// Suspicious choices are warned about and need a confirmation before the step is taken:
// the same value given to two inputs of one step (MatchEither(dst_ip, dst_ip)), and a
// time input given another field than the one the lookups' documentation recommends
// (RECOMMENDED_TIME: the moment the flow began, docs/lookups-network.md). The inputs
// start on distinct values, a time input on the recommended field.
(function () {
  "use strict";
  const { api, el, canChange } = nd;
  const root = document.getElementById("builder");
  const name = root.dataset.procedure;
  const $ = (id) => document.getElementById(id);
  const RECOMMENDED_TIME = "start_time";
  const state = { procedure: null, types: null, functions: {}, field: root.dataset.field, chain: "", history: [], mode: "end", options: null, expression: null, display: "" };

  // "DNS.Name(ip_address:ip) → (host_name:string)" → {lookup, function, inputs, outputs}
  function signature(notation) {
    const m = /^([A-Za-z_]\w*)\.([A-Za-z_]\w*)\((.*?)\)\s*→\s*\((.*)\)$/.exec(notation);
    if (!m) return null;
    const params = (s) => s.split(",").map((p) => p.trim()).filter(Boolean).map((p) => { const [n, t] = p.split(":"); return { name: n, type: t }; });
    return { lookup: m[1], function: m[2], inputs: params(m[3]), outputs: params(m[4]), notation };
  }

  function fieldTypes() { return Object.assign({}, state.types.standard_fields, state.procedure.add_fields || {}); }
  const feeds = (found, expected) => (state.types.feeds[found] || [found]).includes(expected);

  function chainSignature() {
    const m = /^([A-Za-z_]\w*)\.([A-Za-z_]\w*)\(/.exec(state.chain);
    return m ? state.functions[m[1] + "." + m[2]] : null;
  }

  // values an input of type `type` may take: the last step's outputs, then trigger fields
  function candidates(type) {
    const out = [];
    const last = chainSignature();
    if (last) for (const o of last.outputs) if (feeds(o.type, type)) out.push(state.chain + "." + o.name);
    for (const [f, t] of Object.entries(fieldTypes()).sort()) if (feeds(t, type)) out.push(f);
    return out;
  }

  function render() {
    const p = state.procedure;
    $("builder-trigger").textContent = p.trigger;
    $("builder-state").textContent = p.enabled ? "enabled" : "disabled";
    $("builder-state").className = "badge " + (p.enabled ? "ok" : "");
    const toggle = $("builder-toggle-enabled");
    toggle.textContent = p.enabled ? "Disable" : "Enable";
    toggle.hidden = !canChange();
    $("builder-field-type").textContent = fieldTypes()[state.field] || "?";
    $("builder-current").textContent = (p.fields || {})[state.field] || "<none>";
    $("builder-chain").textContent = state.chain || "(the trigger's fields)";
    $("builder-back").disabled = !state.history.length;
    $("builder-end").setAttribute("aria-pressed", String(state.mode === "end"));
    $("builder-continue").setAttribute("aria-pressed", String(state.mode === "continue"));
    const o = state.options;
    const realEnds = o ? o.end.filter((e) => e.expression !== "<none>") : [];
    $("builder-end").disabled = !!o && !realEnds.length && state.chain !== "";
    $("builder-continue").disabled = !!o && !o.continue.length;
    const list = $("builder-options");
    if (!o) { list.replaceChildren(); return; }
    if (state.mode === "end") {
      list.replaceChildren(...o.end.map((e) => el("li", {}, el("button", {
        type: "button", "data-testid": "builder-option", "data-expression": e.expression,
        onclick: () => choose(e.expression, e.display),
      }, e.display === e.expression ? e.expression : `${e.display}   (${e.expression})`, e.type ? ` : ${e.type}` : ""))));
    } else {
      list.replaceChildren(...o.continue.map((n) => el("li", {}, el("button", {
        type: "button", "data-testid": "builder-option", "data-function": n, onclick: () => pickFunction(n),
      }, n))));
    }
    $("builder-expression").textContent = state.expression ?? "";
    $("builder-display").textContent = state.expression && state.display !== state.expression ? state.display : "";
    const save = $("builder-save");
    save.hidden = !canChange();
    save.disabled = state.expression === null || p.enabled;
    if (p.enabled && state.expression !== null) $("builder-message").textContent = "Disable the procedure to change its field enhancements.";
  }

  async function loadOptions() {
    state.options = null;
    state.expression = null;
    $("builder-args").hidden = true;
    render();
    try {
      state.options = await api("GET", `/api/procedures/${encodeURIComponent(name)}/options?field=${encodeURIComponent(state.field)}&chain=${encodeURIComponent(state.chain)}`);
      $("builder-message").textContent = "";  // not showError: it would hide the line for good
    } catch (error) { $("builder-message").textContent = String(error.message); }
    render();
  }

  function choose(expression, display) {
    state.expression = expression;
    state.display = display;
    $("builder-message").textContent = "";
    render();
  }

  // the warnings a step's arguments deserve (empty: nothing suspicious)
  function warnings(sig, args) {
    const out = [];
    const seen = {};
    args.forEach((a, i) => {
      if (seen[a] !== undefined) out.push(`${a} is given twice (to ${sig.inputs[seen[a]].name} and to ${sig.inputs[i].name}): the step compares a value with itself`);
      else seen[a] = i;
      if (sig.inputs[i].type === "timestamp" && a !== RECOMMENDED_TIME && fieldTypes()[a] === "timestamp") {
        out.push(`${sig.inputs[i].name} ← ${a}: the lookups' documentation recommends ${RECOMMENDED_TIME} (the moment the flow began; at ${a} the session may be over)`);
      }
    });
    return out;
  }

  // first choices: distinct values, the recommended time for a time input
  function defaults(sig) {
    const taken = new Set();
    return sig.inputs.map((param) => {
      const options = candidates(param.type);
      let pick = param.type === "timestamp" && options.includes(RECOMMENDED_TIME) ? RECOMMENDED_TIME : options.find((c) => !taken.has(c));
      if (pick === undefined) pick = options[0] || "";
      taken.add(pick);
      return pick;
    });
  }

  function pickFunction(notation) {
    const sig = state.functions[notation.split("(")[0]] || signature(notation);
    const box = $("builder-args");
    const first = defaults(sig);
    const selects = sig.inputs.map((param, i) => el("select", { "data-testid": "builder-arg-" + param.name, "data-param": param.name, id: "builder-arg-" + param.name },
      candidates(param.type).map((c) => el("option", { value: c, text: c, selected: c === first[i] }))));
    const warning = el("div", { class: "warning", "data-testid": "builder-warning", role: "alert", hidden: true });
    const take = (args) => {
      state.history.push(state.chain);
      state.chain = `${sig.lookup}.${sig.function}(${args.join(", ")})`;
      state.mode = "end";
      loadOptions();
    };
    const hideWarning = () => { warning.hidden = true; warning.replaceChildren(); };
    selects.forEach((select) => select.addEventListener("change", hideWarning));
    box.replaceChildren(
      el("div", {}, el("b", { text: notation })),
      ...sig.inputs.map((param, i) => el("label", { for: "builder-arg-" + param.name }, `${param.name}:${param.type} ← `, selects[i])),
      el("div", { class: "toolbar", style: "margin:0" }, el("button", { type: "button", id: "builder-apply", class: "primary", "data-testid": "builder-apply", onclick: () => {
        const args = selects.map((s) => s.value);
        if (args.some((a) => !a)) { $("builder-message").textContent = "no value fits an input of " + notation; return; }
        const found = warnings(sig, args);
        if (!found.length) { take(args); return; }
        warning.replaceChildren(
          el("b", { text: "Check this step before taking it:" }),
          el("ul", {}, found.map((w) => el("li", { "data-testid": "builder-warning-item", text: w }))),
          el("div", { class: "toolbar", style: "margin:0" },
            el("button", { type: "button", class: "danger", "data-testid": "builder-confirm", text: "Apply anyway", onclick: () => { hideWarning(); take(args); } }),
            el("button", { type: "button", "data-testid": "builder-change", text: "Change the inputs", onclick: () => { hideWarning(); selects[0].focus(); } })));
        warning.hidden = false;
      } }, "Apply this step")),
      warning);
    box.hidden = false;
  }

  async function save() {
    const p = state.procedure;
    const fields = Object.assign({}, p.fields || {});
    if (state.expression === "<none>") delete fields[state.field];
    else fields[state.field] = state.expression;
    const body = { trigger: p.trigger, description: p.description, enabled: p.enabled, pass_through: p.pass_through, add_fields: p.add_fields, fields };
    try {
      state.procedure = await api("PUT", `/api/procedures/${encodeURIComponent(name)}`, body);
      $("builder-message").textContent = `Saved: ${state.field} = ${state.expression}`;
      await drawGraph();
    } catch (error) { $("builder-message").textContent = "Not saved: " + error.message; }
    render();
  }

  async function toggleEnabled() {
    try {
      state.procedure = await api("POST", `/api/procedures/${encodeURIComponent(name)}/${state.procedure.enabled ? "disable" : "enable"}`);
      $("builder-message").textContent = state.procedure.enabled ? "Enabled." : "Disabled: field enhancements can change.";
    } catch (error) { $("builder-message").textContent = error.message; }
    render();
  }

  async function drawGraph() { await ndGraph.draw($("builder-graph"), state.procedure); }

  async function start() {
    try {
      const [procedure, types, lookups] = await Promise.all([
        api("GET", `/api/procedures/${encodeURIComponent(name)}`),
        api("GET", "/api/console/types"),
        api("GET", "/api/lookups"),
      ]);
      state.procedure = procedure;
      state.types = types;
      for (const l of lookups) for (const n of l.functions) { const s = signature(n); if (s) state.functions[s.lookup + "." + s.function] = s; }
    } catch (error) { $("builder-message").textContent = String(error.message); return; }
    const names = Object.keys(fieldTypes()).sort();
    if (!state.field) state.field = Object.keys(state.procedure.fields || {}).sort()[0] || names[0];
    $("builder-field").replaceChildren(...names.map((n) => el("option", { value: n, selected: n === state.field, text: n + (state.procedure.fields[n] ? " ●" : "") })));
    $("builder-field").addEventListener("change", (e) => { state.field = e.target.value; reset(); });
    $("builder-end").addEventListener("click", () => { state.mode = "end"; render(); });
    $("builder-continue").addEventListener("click", () => { state.mode = "continue"; render(); });
    $("builder-back").addEventListener("click", () => { state.chain = state.history.pop() || ""; loadOptions(); });
    $("builder-reset").addEventListener("click", reset);
    $("builder-save").addEventListener("click", (e) => nd.busy(e.currentTarget, save).then(render));
    $("builder-toggle-enabled").addEventListener("click", (e) => nd.busy(e.currentTarget, toggleEnabled).then(render));
    await drawGraph();
    reset();
  }

  function reset() { state.chain = ""; state.history = []; state.mode = "end"; loadOptions(); }
  start();
})();
