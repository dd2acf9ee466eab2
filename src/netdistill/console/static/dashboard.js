// Dashboard: a time range and filters (account, exporter, service) over traffic in bit/s
// or packets/s, the top accounts, talkers and destinations, ingest per source and gatherer
// health. Every figure comes from the HTTP API (/api/explore/*, /api/dashboard/ingest,
// /api/status, /api/gatherers, /api/alerts); a click on a series or a bar opens the
// explorer with that value as a filter, in the same range.
(function () {
  "use strict";
  const { api, el, bytes, bits, pps, count, showError, rangeQuery } = nd;
  const $ = (id) => document.getElementById(id);
  const FILTERS = [["dash-account", "account_id"], ["dash-exporter", "exporter"], ["dash-service", "service"]];
  let unit = "bits";
  let lastSeries = null;
  const range = nd.timeRange($("dash-range"), { minutes: 60 }, refresh);

  function filters() {
    return FILTERS.map(([id, field]) => [field, $(id).value]).filter(([, v]) => v).map(([f, v]) => `${f}=${v}`);
  }
  function exploreUrl(extra) {
    return "/explore?" + rangeQuery(range.get(), [...filters(), ...(extra || [])]);
  }
  const drill = (field) => (key) => { location.href = exploreUrl([`${field}=${key}`]); };

  function fillIngest(ingest, status) {
    const bySource = {};
    for (const s of (status.sources || [])) bySource[s.name] = s;
    const names = new Set([...ingest.sources.map((s) => s.source), ...Object.keys(bySource)]);
    const rows = ingest.sources.reduce((m, s) => (m[s.source] = s, m), {});
    $("ingest-table").tBodies[0].replaceChildren(...[...names].sort().map((name) => {
      const r = rows[name] || { records_per_s: 0, records: 0, bytes: 0 };
      const s = bySource[name] || {};
      const dropped = Object.values(s.dropped || {}).reduce((a, b) => a + b, 0);
      return el("tr", { "data-source": name },
        el("td", {}, el("a", { href: exploreUrl([`source=${name}`]), text: name || "(none)" })),
        el("td", { class: "num", "data-testid": "ingest-rate", text: r.records_per_s.toFixed(1) }),
        el("td", { class: "num", text: r.records }),
        el("td", { class: "num", text: bytes(r.bytes) }),
        el("td", { class: "num", text: s.datagrams ?? "–" }),
        el("td", { class: "num" + (dropped ? " bad" : ""), text: s.dropped ? dropped : "–" }));
    }));
    const total = ingest.sources.reduce((a, s) => a + s.records_per_s, 0);
    $("stat-ingest").textContent = `ingesting ${total.toFixed(1)} records/s`;
  }

  function fillGatherers(gatherers, status, alerts) {
    const rows = gatherers.map((g) => {
      const st = (g.last_heartbeat || {}).status || {};
      const spool = st.spool || {};
      return el("tr", { "data-gatherer": g.name },
        el("td", { text: g.name }),
        el("td", {}, el("span", { class: "badge " + (g.up ? "ok" : "bad"), "data-testid": "gatherer-health", text: g.up ? "up" : "silent" })),
        // another version or other plugins than the manager's (manager/versions.py)
        el("td", { class: (g.mismatches || []).length ? "bad" : "", "data-testid": "gatherer-version",
                   title: (g.mismatches || []).join("\n") || "same as the manager",
                   text: (g.version || "?") + ((g.mismatches || []).length ? " ≠ manager" : "") }),
        el("td", { class: "nowrap", text: g.seconds_since_last.toFixed(0) + " s ago" }),
        el("td", { class: "num", text: spool.depth_batches ?? "–" }),
        el("td", { class: "num", text: st.committed_records ?? st.records ?? "–" }),
        el("td", { class: "num" + (st.errors ? " bad" : ""), text: st.errors ?? 0 }),
        // batches a manager refused for good (gatherer/deadletter.py), with the reasons
        el("td", {
          class: "num" + ((st.dead_letter || {}).batches ? " bad" : ""),
          "data-testid": "gatherer-dead-letters",
          title: ((st.dead_letter || {}).entries || []).map((d) => d.seq + ": " + d.reason).join("\n"),
          text: (st.dead_letter || {}).batches ?? 0,
        }),
        el("td", { class: (st.alerts || []).length ? "bad" : "", text: (st.alerts || []).join("; ") }));
    });
    if (status.gatherer) {  // the manager's own pipeline (netdistill run)
      rows.unshift(el("tr", { "data-gatherer": status.gatherer },
        el("td", { text: status.gatherer + " (in the manager)" }),
        el("td", {}, el("span", { class: "badge " + (status.errors ? "bad" : "ok"), "data-testid": "gatherer-health", text: status.errors ? "errors" : "up" })),
        el("td", { "data-testid": "gatherer-version", text: status.version || "–" }),
        el("td", { text: "–" }), el("td", { class: "num", text: "–" }),
        el("td", { class: "num", text: status.committed_records ?? "–" }),
        el("td", { class: "num" + (status.errors ? " bad" : ""), text: status.errors ?? 0 }),
        el("td", { class: "num", text: "–" }), el("td", { text: "" })));
    }
    $("gatherers-table").tBodies[0].replaceChildren(...rows);
    const open = alerts.filter((a) => !a.cleared_at);
    $("stat-alerts").textContent = open.length;
    $("stat-alerts").className = "value" + (open.length ? " bad" : "");
    $("alerts-line").textContent = open.length
      ? open.slice(0, 3).map((a) => a.kind + " " + a.subject).join(", ") + (open.length > 3 ? " …" : "")
      : "no open alerts";
  }

  function fillStats(series) {
    const covered = series.covered_s.reduce((a, b) => a + b, 0) || 1;
    const sum = (m) => series.series.reduce((a, s) => a + s[m].reduce((x, y) => x + y, 0), 0);
    const totalBytes = sum("bytes"), totalPackets = sum("packets");
    let peak = 0;
    series.buckets.forEach((_, j) => { peak = Math.max(peak, series.series.reduce((a, s) => a + s.bits_per_s[j], 0)); });
    $("stat-bits").textContent = bits(totalBytes * 8 / covered);
    $("stat-peak").textContent = `peak ${bits(peak)} per ${series.bucket_s} s bucket`;
    $("stat-pps").textContent = pps(totalPackets / covered);
    $("stat-bytes").textContent = `${bytes(totalBytes)} in range`;
    $("stat-records").textContent = count(sum("records"));
  }

  function drawTraffic() {
    if (lastSeries) ndCharts.series("chart-traffic", lastSeries, unit, drill($("dash-by").value));
  }

  async function fillChoices() {
    const q = rangeQuery(range.get(), [], { limit: 50 });
    await Promise.all(FILTERS.map(async ([id, field]) => {
      const select = $(id);
      const chosen = select.value;
      const top = await api("GET", `/api/explore/top?by=${field}&${q}`).catch(() => ({ rows: [] }));
      const keys = top.rows.map((r) => r.key);
      if (chosen && !keys.includes(chosen)) keys.unshift(chosen);
      select.replaceChildren(el("option", { value: "", text: "all" }), ...keys.map((k) => el("option", { value: k, text: k, selected: k === chosen })));
    }));
  }

  let running = false;
  async function refresh() {
    if (running) return;
    running = true;
    const r = range.get();
    const f = filters();
    const bucket = nd.bucketFor(range.seconds());
    const top = (by, label) => api("GET", `/api/explore/top?${rangeQuery(r, f, { by, limit: 10, label })}`);
    $("dash-explore").href = exploreUrl();
    try {
      const [ingest, status, gatherers, alerts, series, accounts, talkers, destinations] = await Promise.all([
        api("GET", "/api/dashboard/ingest?window_s=60"),
        api("GET", "/api/status"),
        api("GET", "/api/gatherers").catch(() => []),
        api("GET", "/api/alerts?open=true").catch(() => []),
        api("GET", `/api/explore/series?${rangeQuery(r, f, { by: $("dash-by").value, bucket_s: bucket, top: 8 })}`),
        top("account_id"),
        top("src_ip", "src_host"),
        top("dst_ip", "dst_host"),
      ]);
      fillIngest(ingest, status);
      fillGatherers(gatherers, status, alerts);
      lastSeries = series;
      fillStats(series);
      drawTraffic();
      ndCharts.bars("chart-top-accounts", accounts.rows, "bytes", ndCharts.palette[0], drill("account_id"));
      ndCharts.bars("chart-top-talkers", talkers.rows, "bytes", ndCharts.palette[1], drill("src_ip"));
      ndCharts.bars("chart-top-destinations", destinations.rows, "bytes", ndCharts.palette[2], drill("dst_ip"));
      $("dash-updated").textContent = nd.time(new Date());
      showError("dash-error", null);
      fillChoices();
    } catch (error) {
      showError("dash-error", error);
    } finally { running = false; }
  }

  for (const [id] of FILTERS) $(id).addEventListener("change", refresh);
  $("dash-by").addEventListener("change", refresh);
  for (const u of ["bits", "packets"]) {
    $("unit-" + u).addEventListener("click", () => {
      unit = u;
      $("unit-bits").setAttribute("aria-pressed", String(u === "bits"));
      $("unit-packets").setAttribute("aria-pressed", String(u === "packets"));
      drawTraffic();
    });
  }
  setInterval(() => { if ($("dash-auto").checked && !document.hidden) refresh(); }, 10000);
  refresh();
})();
