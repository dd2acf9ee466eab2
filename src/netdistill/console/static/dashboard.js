// Dashboard: ingest per source, gatherer health, traffic by service, top lists.
// Every figure comes from the HTTP API; charts are Chart.js (vendored, no CDN).
(function () {
  "use strict";
  const { api, el, bytes, showError } = nd;
  const charts = {};
  const palette = ["#1f4e79", "#e07b39", "#3a9d5d", "#b3261e", "#7b4fa0", "#c9a227", "#2a9bb7", "#8c564b", "#d16ba5", "#7f7f7f"];

  function minutes() { return Number(document.getElementById("dash-range").value); }

  function chart(id, config) {
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
      return;
    }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[id] = new Chart(document.getElementById(id), config);
    document.getElementById(id).dataset.ready = "true";
  }

  function fillIngest(ingest, status) {
    const bySource = {};
    for (const s of (status.sources || [])) bySource[s.name] = s;
    const names = new Set([...ingest.sources.map((s) => s.source), ...Object.keys(bySource)]);
    const rows = ingest.sources.reduce((m, s) => (m[s.source] = s, m), {});
    const body = document.querySelector("#ingest-table tbody");
    body.replaceChildren(...[...names].sort().map((name) => {
      const r = rows[name] || { records_per_s: 0, records: 0, bytes: 0 };
      const s = bySource[name] || {};
      const dropped = Object.values(s.dropped || {}).reduce((a, b) => a + b, 0);
      return el("tr", { "data-source": name },
        el("td", { text: name || "(none)" }),
        el("td", { class: "num", "data-testid": "ingest-rate", text: r.records_per_s.toFixed(1) }),
        el("td", { class: "num", text: r.records }),
        el("td", { class: "num", text: bytes(r.bytes) }),
        el("td", { class: "num", text: s.datagrams ?? "–" }),
        el("td", { class: "num" + (dropped ? " bad" : ""), text: s.dropped ? dropped : "–" }));
    }));
  }

  function fillGatherers(gatherers, status, alerts) {
    const body = document.querySelector("#gatherers-table tbody");
    const rows = gatherers.map((g) => {
      const st = (g.last_heartbeat || {}).status || {};
      const spool = st.spool || {};
      return el("tr", { "data-gatherer": g.name },
        el("td", { text: g.name }),
        el("td", { class: g.up ? "ok" : "bad", "data-testid": "gatherer-health", text: g.up ? "up" : "silent" }),
        // another version or other plugins than the manager's (manager/versions.py)
        el("td", { class: (g.mismatches || []).length ? "bad" : "", "data-testid": "gatherer-version",
                   title: (g.mismatches || []).join("\n") || "same as the manager",
                   text: (g.version || "?") + ((g.mismatches || []).length ? " ≠ manager" : "") }),
        el("td", { text: g.seconds_since_last.toFixed(0) + " s ago" }),
        el("td", { class: "num", text: spool.depth_batches ?? "–" }),
        el("td", { class: "num", text: st.committed_records ?? st.records ?? "–" }),
        el("td", { class: "num" + (st.errors ? " bad" : ""), text: st.errors ?? 0 }));
    });
    if (status.gatherer) {  // the manager's own pipeline (netdistill run)
      rows.unshift(el("tr", { "data-gatherer": status.gatherer },
        el("td", { text: status.gatherer + " (in the manager)" }),
        el("td", { class: status.errors ? "bad" : "ok", "data-testid": "gatherer-health", text: status.errors ? "errors" : "up" }),
        el("td", { "data-testid": "gatherer-version", text: status.version || "–" }),
        el("td", { text: "–" }), el("td", { class: "num", text: "–" }),
        el("td", { class: "num", text: status.committed_records ?? "–" }),
        el("td", { class: "num" + (status.errors ? " bad" : ""), text: status.errors ?? 0 })));
    }
    body.replaceChildren(...rows);
    const open = alerts.filter((a) => !a.cleared_at);
    document.getElementById("alerts-line").textContent = open.length
      ? open.length + " open alert(s): " + open.map((a) => a.kind + " " + a.subject).join(", ")
      : "no open alerts";
  }

  function fillTraffic(traffic) {
    const times = [...new Set(traffic.series.map((r) => r.t))].sort();
    const services = [...new Set(traffic.series.map((r) => r.service))];
    const index = {};
    for (const r of traffic.series) index[r.service + "|" + r.t] = r.bytes;
    chart("chart-traffic", {
      type: "bar",
      data: {
        labels: times.map((t) => t.slice(11, 16)),
        datasets: services.map((s, i) => ({
          label: s, backgroundColor: palette[i % palette.length],
          data: times.map((t) => index[s + "|" + t] || 0),
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, ticks: { callback: (v) => bytes(v) } } } },
    });
  }

  function fillTop(id, top, color) {
    chart(id, {
      type: "bar",
      data: {
        labels: top.rows.map((r) => r.label ? r.key + " (" + r.label + ")" : r.key),
        datasets: [{ label: "bytes", backgroundColor: color, data: top.rows.map((r) => r.bytes) }],
      },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { ticks: { callback: (v) => bytes(v) } } } },
    });
  }

  async function refresh() {
    const m = minutes();
    const bucket = Math.max(10, Math.round(m * 60 / 60));
    try {
      const [ingest, status, gatherers, alerts, traffic, accounts, talkers, destinations] = await Promise.all([
        api("GET", "/api/dashboard/ingest?window_s=60"),
        api("GET", "/api/status"),
        api("GET", "/api/gatherers").catch(() => []),
        api("GET", "/api/alerts?open=true").catch(() => []),
        api("GET", `/api/dashboard/traffic?minutes=${m}&bucket_s=${bucket}`),
        api("GET", `/api/dashboard/top?by=account&minutes=${m}`),
        api("GET", `/api/dashboard/top?by=src&minutes=${m}`),
        api("GET", `/api/dashboard/top?by=dst&minutes=${m}`),
      ]);
      fillIngest(ingest, status);
      fillGatherers(gatherers, status, alerts);
      fillTraffic(traffic);
      fillTop("chart-top-accounts", accounts, palette[0]);
      fillTop("chart-top-talkers", talkers, palette[1]);
      fillTop("chart-top-destinations", destinations, palette[2]);
      document.getElementById("dash-updated").textContent = new Date().toLocaleTimeString();
      showError("dash-error", null);
    } catch (error) {
      showError("dash-error", error);
    }
  }

  document.getElementById("dash-range").addEventListener("change", refresh);
  setInterval(() => { if (document.getElementById("dash-auto").checked) refresh(); }, 5000);
  refresh();
})();
