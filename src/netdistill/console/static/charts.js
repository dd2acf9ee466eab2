// Charts shared by the dashboard, the explorer and the reports: Chart.js (vendored) with
// a real time axis — x is epoch milliseconds on a linear scale whose ticks we place
// ourselves on round UTC times (minutes, hours, days), labelled with the date where it
// changes — so no date adapter is needed. Series answers come from /api/explore/series:
// every bucket is there (empty ones as zero) and a bucket only partly covered (the
// current one) is drawn dashed and named "partial" in the tooltip.
(function () {
  "use strict";
  const palette = ["#1d5fbf", "#e07b39", "#2f9a5a", "#b3261e", "#7b4fa0", "#c9a227", "#2a9bb7", "#8c564b", "#d16ba5", "#5f6b7a", "#9aa9b8"];
  const charts = {};
  const STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

  const pad = (n) => String(n).padStart(2, "0");
  function tickLabel(ms, step, previous) {
    const d = new Date(ms);
    const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    if (step >= 86400000) return date.slice(5);
    const newDay = previous === null || new Date(previous).getUTCDate() !== d.getUTCDate();
    return newDay ? [hm, date] : hm;
  }
  function timeTicks(min, max, target = 8) {
    const step = STEPS.find((s) => (max - min) / s <= target) || STEPS[STEPS.length - 1];
    const ticks = [];
    for (let t = Math.ceil(min / step) * step; t <= max && ticks.length < 200; t += step) ticks.push(t);
    return { step, ticks };
  }
  function timeAxis(min, max) {
    const { step, ticks } = timeTicks(min, max);
    return {
      type: "linear", min, max,
      title: { display: true, text: "time (UTC)", color: "#5b6776" },
      afterBuildTicks: (scale) => { scale.ticks = ticks.map((value) => ({ value })); },
      ticks: { autoSkip: false, maxRotation: 0, callback: (value, index) => tickLabel(value, step, index > 0 ? ticks[index - 1] : null) },
      grid: { color: "#eef1f4" },
    };
  }

  function make(id, config) {
    const canvas = document.getElementById(id);
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[id] = new Chart(canvas, config);
    canvas.dataset.ready = "true";
    return charts[id];
  }

  // A stacked area chart of one series answer. unit: "bits" (bit/s) or "packets" (pkt/s).
  // onClick(key) when a series is clicked (drill-down).
  function series(id, answer, unit, onClick) {
    const field = unit === "packets" ? "packets_per_s" : "bits_per_s";
    const format = unit === "packets" ? nd.pps : nd.bits;
    const times = answer.buckets.map((t) => Date.parse(t));
    const half = answer.bucket_s * 500;
    const partial = answer.partial;
    const min = Date.parse(answer.from), max = Date.parse(answer.to);
    const chart = make(id, {
      type: "line",
      data: {
        datasets: answer.series.map((s, i) => ({
          label: s.key,
          data: times.map((t, j) => ({ x: Math.min(Math.max(t + half, min), max), y: s[field][j] })),
          borderColor: palette[i % palette.length],
          backgroundColor: palette[i % palette.length] + "55",
          fill: i === 0 ? "origin" : "-1",
          pointRadius: 0, pointHoverRadius: 3, borderWidth: 1.4, tension: 0,
          segment: { borderDash: (ctx) => partial[ctx.p1DataIndex] ? [5, 4] : undefined },
        })),
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: timeAxis(min, max),
          y: { stacked: true, beginAtZero: true, title: { display: true, text: unit === "packets" ? "packets/s" : "bit/s", color: "#5b6776" }, ticks: { callback: (v) => format(v) }, grid: { color: "#eef1f4" } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: {
            callbacks: {
              title: (items) => {
                const j = items[0].dataIndex;
                return nd.time(answer.buckets[j], false) + ` (+${answer.bucket_s} s)` + (partial[j] ? " — partial" : "");
              },
              label: (item) => ` ${item.dataset.label}: ${format(item.parsed.y)}`,
              footer: (items) => "total " + format(items.reduce((a, i) => a + i.parsed.y, 0)),
            },
          },
        },
        onClick: (event, elements, c) => {
          if (!onClick) return;
          const hit = c.getElementsAtEventForMode(event, "nearest", { intersect: false }, false)[0];
          if (hit) onClick(answer.series[hit.datasetIndex].key);
        },
      },
    });
    return chart;
  }

  // horizontal bars of a top answer (rows of {key, bytes, packets, records})
  function bars(id, rows, metric, color, onClick) {
    const format = metric === "bytes" ? nd.bytes : nd.count;
    return make(id, {
      type: "bar",
      data: { labels: rows.map((r) => r.label ? `${r.key} (${r.label})` : r.key), datasets: [{ label: metric, backgroundColor: color || palette[0], data: rows.map((r) => r[metric]) }] },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (item) => ` ${format(item.parsed.x)}` } } },
        scales: { x: { beginAtZero: true, ticks: { maxTicksLimit: 5, maxRotation: 0, callback: (v) => format(v) }, grid: { color: "#eef1f4" } }, y: { ticks: { autoSkip: false } } },
        onHover: (event, elements) => { event.native.target.style.cursor = elements.length && onClick ? "pointer" : "default"; },
        onClick: (event, elements) => { if (onClick && elements.length) onClick(rows[elements[0].index].key); },
      },
    });
  }

  // a report's chart from its spec {kind, x, y, series} and its rows (objects)
  function report(id, spec, rows) {
    const isTime = rows.length && rows.every((r) => typeof r[spec.x] === "string" && !isNaN(Date.parse(r[spec.x])) && /^\d{4}-\d\d-\d\d/.test(r[spec.x]));
    const keys = spec.series ? [...new Set(rows.map((r) => String(r[spec.series])))] : [spec.y];
    const format = /bytes/.test(spec.y) ? nd.bytes : nd.count;
    let datasets, scales;
    if (isTime) {
      const times = rows.map((r) => Date.parse(r[spec.x]));
      const min = Math.min(...times), max = Math.max(...times);
      datasets = keys.map((k, i) => ({
        label: k, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length] + (spec.kind === "bar" ? "cc" : "55"),
        data: rows.filter((r) => !spec.series || String(r[spec.series]) === k).map((r) => ({ x: Date.parse(r[spec.x]), y: Number(r[spec.y]) || 0 })),
        pointRadius: 2, borderWidth: 1.4,
      }));
      scales = { x: Object.assign(timeAxis(min, max === min ? min + 3600000 : max), { stacked: spec.kind === "bar" }), y: { stacked: spec.kind === "bar", beginAtZero: true, ticks: { callback: (v) => format(v) } } };
    } else {
      const labels = [...new Set(rows.map((r) => String(r[spec.x])))];
      datasets = keys.map((k, i) => ({
        label: k, backgroundColor: palette[i % palette.length], borderColor: palette[i % palette.length],
        data: labels.map((x) => rows.filter((r) => String(r[spec.x]) === x && (!spec.series || String(r[spec.series]) === k)).reduce((a, r) => a + (Number(r[spec.y]) || 0), 0)),
      }));
      return make(id, { type: spec.kind, data: { labels, datasets }, options: { plugins: { legend: { display: !!spec.series, position: "bottom" } }, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { callback: (v) => format(v) } } } } });
    }
    return make(id, { type: spec.kind === "bar" ? "bar" : "line", data: { datasets }, options: { interaction: { mode: "nearest", intersect: false }, plugins: { legend: { display: !!spec.series, position: "bottom" } }, scales } });
  }

  window.ndCharts = { series, bars, report, palette, timeTicks };
})();
