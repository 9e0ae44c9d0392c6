// The service page: uptime and connections (/healthz) and the key /metrics figures, sampled
// every 2 s, each with a small chart of its last few minutes.
"use strict";

(function () {
  const el = CF.el;
  const PERIOD_MS = 2000;
  const SAMPLES = 90; // three minutes

  // Prometheus text → {name: total over every label set}.
  function parseMetrics(text) {
    const totals = {};
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!match) continue;
      const value = Number(match[3]);
      if (!Number.isFinite(value)) continue;
      totals[match[1]] = (totals[match[1]] || 0) + value;
    }
    return totals;
  }

  // What the page shows: a label, how to read it from a sample, and how to print it.
  // `rate: true` figures are counters shown per second.
  const FIGURES = [
    { id: "uptime", label: "Uptime", read: (h) => h.uptime_secs, show: CF.duration, chart: false },
    { id: "connections", label: "Connections", read: (h) => h.connections },
    { id: "sessions", label: "Sessions (attached)", read: (h, m) => m.codeflow_sessions_attached, extra: (h) => h.sessions + " held" },
    { id: "projects", label: "Projects with sessions", read: (h) => h.projects },
    { id: "messages-in", label: "Messages in /s", read: (h, m) => m.codeflow_messages_in_total, rate: true },
    { id: "messages-out", label: "Messages out /s", read: (h, m) => m.codeflow_messages_out_total, rate: true },
    { id: "lsp-running", label: "Language servers running", read: (h, m) => m.codeflow_lsp_servers_running },
    { id: "runs-live", label: "Claude runs live", read: (h, m) => m.codeflow_claude_runs_live },
    { id: "errors", label: "Errors /s", read: (h, m) => m.codeflow_errors_total || 0, rate: true },
    { id: "disk", label: "Data dir free", read: (h, m) => m.codeflow_data_dir_available_bytes, show: CF.bytes, chart: false },
  ];

  function sparkline(values) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 " + SAMPLES + " 40");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const base = document.createElementNS("http://www.w3.org/2000/svg", "line");
    base.setAttribute("x1", "0");
    base.setAttribute("x2", String(SAMPLES));
    base.setAttribute("y1", "39");
    base.setAttribute("y2", "39");
    base.setAttribute("class", "base");
    svg.appendChild(base);
    const finite = values.filter((v) => Number.isFinite(v));
    if (finite.length > 1) {
      const max = Math.max.apply(null, finite.concat([1])) * 1.25; // headroom above the top
      // The samples so far spread over the width (it holds the last SAMPLES of them).
      const step = SAMPLES / (values.length - 1);
      const points = values.map((v, i) => (i * step).toFixed(1) + "," + (38 - (Number.isFinite(v) ? v : 0) / max * 36).toFixed(1));
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points.join(" "));
      svg.appendChild(line);
    }
    return svg;
  }

  function render(app, main) {
    app.title("Service");
    const status = el("p", { class: "meta", role: "status", id: "service-status" });
    const grid = el("div", { class: "figures", id: "figures" });
    main.appendChild(el("h1", { text: "Service" }));
    main.appendChild(status);
    main.appendChild(grid);
    const history = new Map(FIGURES.map((f) => [f.id, []]));
    let previous = null, timer = null, stopped = false;

    async function sample() {
      try {
        const [health, metricsText] = await Promise.all([
          fetch("/healthz", { cache: "no-store" }).then((r) => r.json()),
          fetch("/metrics", { cache: "no-store" }).then((r) => r.text()),
        ]);
        const metrics = parseMetrics(metricsText);
        const now = Date.now();
        CF.clear(grid);
        for (const f of FIGURES) {
          let value = f.read(health, metrics);
          if (f.rate) {
            const before = previous && previous.values[f.id];
            value = before === undefined || before === null || value === undefined
              ? null
              : Math.max(0, (value - before) / ((now - previous.at) / 1000));
          }
          const series = history.get(f.id);
          series.push(value === undefined ? null : value);
          if (series.length > SAMPLES) series.shift();
          const shown = value === null || value === undefined ? "—" : f.show ? f.show(value) : (Math.round(value * 10) / 10).toString();
          grid.appendChild(el("div", { class: "figure", "data-figure": f.id },
            el("div", { class: "meta", text: f.label }),
            el("div", { class: "value", text: shown }),
            f.extra ? el("div", { class: "meta", text: f.extra(health, metrics) }) : null,
            f.chart === false ? null : sparkline(series)));
        }
        previous = { at: now, values: Object.fromEntries(FIGURES.map((f) => [f.id, f.read(health, metrics)])) };
        status.textContent = "codeflow-server " + health.version + " · sampled " + new Date(now).toLocaleTimeString();
        grid.setAttribute("data-samples", String(history.get("connections").length));
      } catch (e) {
        status.textContent = "Cannot read the server's figures: " + CF.errorText(e);
      }
      if (!stopped) timer = setTimeout(sample, PERIOD_MS);
    }
    sample();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  window.CFPages = window.CFPages || {};
  window.CFPages.service = render;
})();
