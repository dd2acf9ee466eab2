// A procedure drawn as linked blocks (seed 001, "Additional Embodiments"): the trigger on
// the left, one block per lookup step (shared by the fields that use the same
// application, as the flow plan shares it), the target fields on the right. Edges carry
// the value passed: a trigger field or a step's output.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 190, H = 30, XGAP = 120, YGAP = 18;

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function trees(procedure) {
    const names = Object.keys(procedure.fields || {}).sort();
    if (!names.length) return [];
    const query = names.map((n) => "expression=" + encodeURIComponent(procedure.fields[n])).join("&");
    const parsed = await nd.api("GET", "/api/console/notation?" + query);
    return names.map((n, i) => ({ field: n, parsed: parsed[i] }));
  }

  // nodes: id → {id, label, title, kind, col}; edges: [{from, to, label}]
  function build(procedure, fieldTrees) {
    const nodes = new Map([["trigger", { id: "trigger", label: "⚡ " + procedure.trigger, title: "trigger: source " + procedure.trigger, kind: "trigger", col: 0 }]]);
    const edges = new Map();
    // one edge per pair of blocks, labelled with every value it carries
    const edge = (from, to, label) => {
      const e = edges.get(from + "|" + to) || edges.set(from + "|" + to, { from, to, labels: [] }).get(from + "|" + to);
      if (!e.labels.includes(label)) e.labels.push(label);
    };
    function visit(t) {
      if (t.kind === "field") return { id: "trigger", col: 0, label: t.name };
      let col = 0;
      for (const arg of t.args) {
        const r = visit(arg);
        col = Math.max(col, r.col);
        edge(r.id, "call:" + t.application, r.label);
      }
      const id = "call:" + t.application;
      const existing = nodes.get(id);
      nodes.set(id, { id, label: t.lookup + "." + t.function, title: t.application, kind: "call", col: Math.max(col + 1, existing ? existing.col : 0) });
      return { id, col: col + 1, label: t.output };
    }
    const ends = [];
    for (const { field, parsed } of fieldTrees) {
      if (parsed.error) { ends.push({ field, from: null, label: "error: " + parsed.error }); continue; }
      const r = visit(parsed.tree);
      ends.push({ field, from: r.id, label: r.label });
    }
    const last = Math.max(0, ...[...nodes.values()].map((n) => n.col)) + 1;
    for (const e of ends) {
      nodes.set("field:" + e.field, { id: "field:" + e.field, label: e.field, title: procedure.fields[e.field], kind: "field", col: last });
      if (e.from) edge(e.from, "field:" + e.field, e.label);
    }
    const list = [...edges.values()].map((e) => ({ from: e.from, to: e.to, label: e.labels.join(", ") }));
    return { nodes: [...nodes.values()], edges: list };
  }

  function render(container, procedure, graph) {
    const columns = {};
    for (const n of graph.nodes) (columns[n.col] = columns[n.col] || []).push(n);
    let rows = 0;
    for (const list of Object.values(columns)) {
      list.forEach((n, i) => { n.x = 10 + n.col * (W + XGAP); n.y = 10 + i * (H + YGAP); });
      rows = Math.max(rows, list.length);
    }
    const cols = Object.keys(columns).length;
    const root = svg("svg", {
      class: "graph", width: 20 + cols * (W + XGAP), height: 20 + rows * (H + YGAP),
      "data-testid": "procedure-graph-" + procedure.name, "data-procedure": procedure.name,
    });
    const at = Object.fromEntries(graph.nodes.map((n) => [n.id, n]));
    const incoming = {};
    for (const e of graph.edges) {
      const a = at[e.from], b = at[e.to];
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "data-from": e.from, "data-to": e.to }));
      // labels beside the block they enter, stacked when several enter it
      const k = (incoming[e.to] = (incoming[e.to] || 0) + 1) - 1;
      root.append(svg("text", { class: "edge-label", x: x2 - 6, y: y2 - 4 - 12 * k, "text-anchor": "end" }, e.label));
    }
    for (const n of graph.nodes) {
      const g = svg("g", { class: "node " + n.kind, "data-node": n.id });
      g.append(svg("title", {}, n.title));
      g.append(svg("rect", { x: n.x, y: n.y, width: W, height: H, rx: 5 }));
      g.append(svg("text", { x: n.x + 8, y: n.y + 19 }, n.label.length > 28 ? n.label.slice(0, 27) + "…" : n.label));
      root.append(g);
    }
    container.replaceChildren(root);
  }

  async function draw(container, procedure) {
    const graph = build(procedure, await trees(procedure));
    render(container, procedure, graph);
    return graph;
  }

  window.ndGraph = { draw, build };
})();
