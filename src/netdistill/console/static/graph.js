// A procedure drawn as linked blocks (seed 001, "Additional Embodiments"): the trigger on
// the left, one block per lookup step (shared by the fields that use the same
// application, as the flow plan shares it), the target fields on the right. Edges carry
// the value passed: a trigger field or a step's output.
//
// Layout (a small layered, Sugiyama-style drawing, hand-written because the graphs have
// a handful of nodes and a library such as dagre or ELK would be 100+ kB for this):
// 1. layers: a block's column is one more than the deepest block feeding it; fields last;
// 2. an edge spanning several columns gets a dummy slot in each column it crosses, so
//    it runs through a gap of that column, never through a block;
// 3. rows: a few barycentre sweeps (down, then up) order each column to cut crossings;
// 4. edges are cubic curves between adjacent columns and straight through dummy slots;
//    each label sits in the gap after its source, and the labels of one gap are pushed
//    apart so none overlaps another.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 176, H = 30, YGAP = 16, DUMMY = 14, LABEL_H = 13, MARGIN = 10;

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

  // nodes: [{id, label, title, kind, col}]; edges: [{from, to, label}]
  function build(procedure, fieldTrees) {
    const nodes = new Map([["trigger", { id: "trigger", label: "⚡ " + procedure.trigger, title: "trigger: source " + procedure.trigger, kind: "trigger", col: 0 }]]);
    const edges = new Map();
    // one edge per pair of blocks, labelled with every value it carries
    const edge = (from, to, label) => {
      const key = from + "|" + to;
      if (!edges.has(key)) edges.set(key, { from, to, labels: [] });
      const e = edges.get(key);
      if (!e.labels.includes(label)) e.labels.push(label);
    };
    function visit(t) {
      if (t.kind === "field") return { id: "trigger", col: 0, label: t.name };
      let col = 0;
      const id = "call:" + t.application;
      for (const arg of t.args) {
        const r = visit(arg);
        col = Math.max(col, r.col);
        edge(r.id, id, r.label);
      }
      const existing = nodes.get(id);
      const at = Math.max(col + 1, existing ? existing.col : 0);
      nodes.set(id, { id, label: t.lookup + "." + t.function, title: t.application, kind: "call", col: at });
      return { id, col: at, label: t.output };
    }
    const ends = [];
    for (const { field, parsed } of fieldTrees) {
      if (parsed.error) { ends.push({ field, from: null, label: "error: " + parsed.error }); continue; }
      const r = visit(parsed.tree);
      ends.push({ field, from: r.id, label: r.label });
    }
    // a block fed by a block placed later moves right of it (shared applications)
    for (let changed = true, n = 0; changed && n < 50; n++) {
      changed = false;
      for (const e of edges.values()) {
        const a = nodes.get(e.from), b = nodes.get(e.to);
        if (b.col <= a.col) { b.col = a.col + 1; changed = true; }
      }
    }
    const last = Math.max(0, ...[...nodes.values()].map((n) => n.col)) + 1;
    for (const e of ends) {
      nodes.set("field:" + e.field, { id: "field:" + e.field, label: e.field, title: procedure.fields[e.field], kind: "field", col: last });
      if (e.from) edge(e.from, "field:" + e.field, e.label);
    }
    const list = [...edges.values()].map((e) => ({ from: e.from, to: e.to, label: e.labels.join(", ") }));
    return { nodes: [...nodes.values()], edges: list };
  }

  // columns of slots (real nodes and dummies), ordered by barycentre sweeps
  function layout(graph) {
    const at = Object.fromEntries(graph.nodes.map((n) => [n.id, n]));
    const cols = Math.max(0, ...graph.nodes.map((n) => n.col)) + 1;
    const columns = Array.from({ length: cols }, () => []);
    for (const n of graph.nodes) columns[n.col].push({ id: n.id, node: n, dummy: false });
    const chains = graph.edges.map((e, i) => {
      const a = at[e.from], b = at[e.to];
      const ids = [e.from];
      for (let c = a.col + 1; c < b.col; c++) {
        const id = `dummy:${i}:${c}`;
        columns[c].push({ id, dummy: true, edge: i });
        ids.push(id);
      }
      ids.push(e.to);
      return { edge: e, ids };
    });
    const neighbours = { up: {}, down: {} };
    for (const { ids } of chains) {
      for (let k = 0; k + 1 < ids.length; k++) {
        (neighbours.down[ids[k]] = neighbours.down[ids[k]] || []).push(ids[k + 1]);
        (neighbours.up[ids[k + 1]] = neighbours.up[ids[k + 1]] || []).push(ids[k]);
      }
    }
    const position = {};
    const number = () => columns.forEach((list) => list.forEach((s, i) => { position[s.id] = i; }));
    number();
    const sweep = (range, side) => {
      for (const c of range) {
        const list = columns[c];
        const score = (s) => {
          const ns = neighbours[side][s.id] || [];
          return ns.length ? ns.reduce((a, n) => a + position[n], 0) / ns.length : position[s.id];
        };
        const scores = new Map(list.map((s) => [s.id, score(s)]));
        list.sort((x, y) => scores.get(x.id) - scores.get(y.id) || position[x.id] - position[y.id]);
        list.forEach((s, i) => { position[s.id] = i; });
      }
    };
    const forward = [...Array(cols).keys()].slice(1), backward = [...Array(cols).keys()].reverse().slice(1);
    for (let round = 0; round < 4; round++) { sweep(forward, "up"); sweep(backward, "down"); }
    return { columns, chains };
  }

  function render(container, procedure, graph) {
    const { columns, chains } = layout(graph);
    const longest = Math.max(0, ...graph.edges.map((e) => e.label.length));
    const XGAP = Math.min(190, Math.max(110, longest * 6.2 + 24));
    const place = {};
    let height = 0;
    columns.forEach((list, c) => {
      let y = MARGIN;
      for (const s of list) {
        const h = s.dummy ? DUMMY : H;
        place[s.id] = { x: MARGIN + c * (W + XGAP), y, h, dummy: s.dummy };
        y += h + YGAP;
      }
      height = Math.max(height, y);
    });
    // centre shorter columns against the tallest
    columns.forEach((list) => {
      if (!list.length) return;
      const last = place[list[list.length - 1].id];
      const shift = Math.max(0, (height - (last.y + last.h + YGAP)) / 2);
      for (const s of list) place[s.id].y += shift;
    });
    const width = MARGIN * 2 + columns.length * W + Math.max(0, columns.length - 1) * XGAP;
    const root = svg("svg", {
      class: "graph", width, height: height + MARGIN, style: `max-width:100%;height:auto`, viewBox: `0 0 ${width} ${height + MARGIN}`,
      role: "img", "aria-label": `procedure ${procedure.name}: trigger, lookup steps and fields`,
      "data-testid": "procedure-graph-" + procedure.name, "data-procedure": procedure.name,
    });
    const mid = (p) => p.y + p.h / 2;
    const labels = [];
    for (const { edge, ids } of chains) {
      let d = "";
      for (let k = 0; k + 1 < ids.length; k++) {
        const a = place[ids[k]], b = place[ids[k + 1]];
        const x1 = a.x + W, y1 = mid(a), x2 = b.x, y2 = mid(b), mx = (x1 + x2) / 2;
        if (k === 0) d += `M${x1},${y1}`;
        else d += ` L${x1},${y1}`;  // straight through the dummy slot
        d += ` C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
        if (k === 0) labels.push({ text: edge.label, x: mx, want: (y1 + y2) / 2 - 4, gap: place[ids[0]].x, edge });
      }
      root.append(svg("path", { class: "edge", d, "data-from": edge.from, "data-to": edge.to }));
    }
    // labels of one gap pushed apart (sorted by the height they want)
    const byGap = {};
    for (const l of labels) (byGap[l.gap] = byGap[l.gap] || []).push(l);
    for (const list of Object.values(byGap)) {
      list.sort((a, b) => a.want - b.want);
      let floor = -Infinity;
      for (const l of list) { l.y = Math.max(l.want, floor + LABEL_H); floor = l.y; }
      const overflow = floor - (height - 2);
      if (overflow > 0) for (const l of list) l.y -= overflow;
    }
    for (const l of labels) {
      const shown = l.text.length * 6.2 > XGAP - 12 ? l.text.slice(0, Math.floor((XGAP - 16) / 6.2)) + "…" : l.text;
      const g = svg("g", { class: "edge-label-group", "data-from": l.edge.from, "data-to": l.edge.to });
      g.append(svg("title", {}, l.text));
      const widthPx = shown.length * 6.2 + 6;
      g.append(svg("rect", { class: "edge-label-bg", x: l.x - widthPx / 2, y: l.y - 10, width: widthPx, height: LABEL_H, rx: 3 }));
      g.append(svg("text", { class: "edge-label", x: l.x, y: l.y, "text-anchor": "middle" }, shown));
      root.append(g);
    }
    for (const n of graph.nodes) {
      const p = place[n.id];
      const g = svg("g", { class: "node " + n.kind, "data-node": n.id });
      g.append(svg("title", {}, n.title));
      g.append(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 5 }));
      g.append(svg("text", { x: p.x + 8, y: p.y + 19 }, n.label.length > 25 ? n.label.slice(0, 24) + "…" : n.label));
      root.append(g);
    }
    container.replaceChildren(root);
  }

  async function draw(container, procedure) {
    const graph = build(procedure, await trees(procedure));
    render(container, procedure, graph);
    return graph;
  }

  window.ndGraph = { draw, build, layout };
})();
