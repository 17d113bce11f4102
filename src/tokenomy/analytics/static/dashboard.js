// Tokenomy cost dashboard: draws the report sections with Chart.js.
// Served by the gateway it fetches /dashboard/api/<section> and redraws when a filter changes;
// in the self-contained HTML report the data is embedded as window.TOKENOMY_DATA.
(function () {
  "use strict";

  const SECTIONS = ["totals", "headline", "spend", "usage", "cache", "latency", "tiers", "savings", "breakdown",
                    "budgets", "alerts", "requests", "providers"];
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                   "#9c755f", "#bab0ac"];
  const C = window.TokenomyConsole;
  const charts = {};
  // What the page last drew, for people poking in the console and for the browser test.
  const state = (window.tokenomyDashboard = { renders: 0, data: null, charts: charts, error: null });

  const color = (i) => PALETTE[i % PALETTE.length];
  const num = C.num;
  const usd = C.usd;
  const uniq = (values) => [...new Set(values)].sort();
  // Tooltips print amounts by the money rule, from the API's exact strings; axes carry short tick labels.
  const moneyAxis = { ticks: { callback: (v) => C.usdTick(v) }, title: { display: true, text: "USD" } };
  const moneyTips = C.moneyTips;

  function draw(id, config, csvName) {
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options);
    charts[id] = new Chart(document.getElementById(id), config);
    // CSV of what the chart shows, unless the caller registered the exact rows it drew from
    if (csvName && !C.csvRows[csvName]) {
      const d = config.data;
      C.csvRows[csvName] = d.labels.map((label, i) => Object.fromEntries([["label", label],
        ...d.datasets.map((ds) => [ds.label, ds.data[i]])]));
    }
  }

  function bars(labels, datasets, options) {
    return { type: "bar", data: { labels: labels, datasets: datasets }, options: options || {} };
  }

  // Two-period money bars for the console panels (horizontal when the labels are long names).
  function periodBars(id, csvName, labels, datasets, horizontal) {
    const value = horizontal ? "x" : "y";
    const category = { ticks: C.nameTicks() };
    draw(id, bars(labels, datasets.map((d, i) => Object.assign({ backgroundColor: color(i === 0 ? 0 : 9) }, d)), {
      indexAxis: horizontal ? "y" : "x", plugins: moneyTips,
      scales: { [value]: moneyAxis, [horizontal ? "y" : "x"]: category } }), csvName);
  }

  function render(data) {
    for (const name of Object.keys(C.csvRows)) delete C.csvRows[name];
    const t = data.totals;
    document.getElementById("kpi-cost").textContent = usd(t.cost_usd);
    document.getElementById("kpi-calls").textContent = num(t.calls).toLocaleString("en-US");
    document.getElementById("kpi-range").textContent = t.first_ts ? t.first_ts.slice(0, 10) + " → " +
      t.last_ts.slice(0, 10) + " (UTC)" : "no calls in this range";
    // An imported bill's rows are spend without calls: the spend, usage and cache charts draw them; a bill has no
    // latency and no routing tier, so those two need calls.
    const none = t.calls || data.spend.length ? null : "No calls in this range. Widen the dates or clear the " +
      "filters (Reset); to record calls, send traffic through `tokenomy serve` or run `tokenomy ledger import`.";
    const noCalls = none || (t.calls ? null : "Only imported bills in this range: latency and routing tiers come " +
      "from calls made through Tokenomy (`tokenomy serve`, the client), which a bill does not list.");
    C.render(data, periodBars);
    window.TokenomyRequests.render(data.requests);
    window.TokenomyProviders.render(data.providers, draw, color);

    forecastChart(data.headline);
    for (const id of ["sec-spend", "sec-usage", "sec-cache"]) C.empty(id, none);
    for (const id of ["sec-latency", "sec-tiers"]) C.empty(id, noCalls);
    if (!none) {
      C.csvRows["spend-by-day"] = data.spend;
      const days = C.timeAxis(data.spend.map((r) => r.day), "day");
      const spendModels = uniq(data.spend.map((r) => r.model));
      // one row a day and model (the API sums them in Decimal): looked up, never added here
      const spent = (day, model) => (data.spend.find((r) => r.day === day && r.model === model) || {}).cost_usd || "0";
      draw("chart-spend", bars(days, spendModels.map((model, i) => Object.assign(
        C.moneyData(model, days.map((day) => spent(day, model))), { backgroundColor: color(i) })),
      { plugins: moneyTips, scales: { x: { stacked: true }, y: Object.assign({ stacked: true }, moneyAxis) } }));

      C.csvRows["usage"] = data.usage;
      const types = [["input_cost_usd", "input"], ["output_cost_usd", "output"], ["cache_read_cost_usd", "cache read"],
                     ["cache_write_cost_usd", "cache write"], ["cache_storage_cost_usd", "cache storage"],
                     ["other_cost_usd", "other"]];
      draw("chart-usage", bars(data.usage.map((r) => r.model), types.map(([key, label], i) => ({
        label: label, backgroundColor: color(i), data: data.usage.map((r) => num(r[key])),
      })), { indexAxis: "y", plugins: { tooltip: { callbacks: { label: (item) => {
        const row = data.usage[item.dataIndex], key = types[item.datasetIndex][0];
        const tokens = row[key.replace("_cost_usd", "_tokens")];
        // cache storage is paid per token-hour and a bill's other charges are not tokens: no token count
        return item.dataset.label + ": " + usd(row[key]) +
          (tokens === undefined ? "" : " (" + num(tokens).toLocaleString("en-US") + " tokens)");
      } } } },
      scales: { x: Object.assign({ stacked: true }, moneyAxis), y: { stacked: true, ticks: C.nameTicks() } } }));

      C.csvRows["cache-hit-rate"] = data.cache;
      draw("chart-cache", bars(data.cache.map((r) => r.model), [{
        label: "cache hit rate (%)", backgroundColor: color(3),
        data: data.cache.map((r) => (r.cache_hit_rate === null ? 0 : 100 * r.cache_hit_rate)),
      }], { scales: { x: { ticks: C.nameTicks() }, y: { min: 0, max: 100, title: { display: true, text: "%" } } } }));
    }
    document.getElementById("tiers-note").textContent = "";
    if (!noCalls) {
      C.csvRows["latency"] = data.latency;
      const lat = [["p50_ms", "p50"], ["p95_ms", "p95"], ["ttft_p50_ms", "TTFT p50"], ["ttft_p95_ms", "TTFT p95"]];
      draw("chart-latency", bars(data.latency.map((r) => r.model), lat.map(([key, label], i) => ({
        label: label, backgroundColor: color(i), data: data.latency.map((r) => r[key]),
      })), { scales: { x: { ticks: C.nameTicks() }, y: { title: { display: true, text: "ms" } } } }));

      C.csvRows["tiers"] = data.tiers;
      draw("chart-tiers", { type: "doughnut", data: { labels: data.tiers.map((r) => r.tier), datasets: [{
        label: "calls", data: data.tiers.map((r) => r.calls),
        backgroundColor: data.tiers.map((_, i) => color(i)) }] } });
      const untiered = data.tiers.find((r) => r.tier === "(none)");
      document.getElementById("tiers-note").textContent = untiered && untiered.share > 0.5
        ? pctText(untiered.share) + " of calls went through no routing policy (tier \"(none)\"): give a route " +
          "`policy:` in tokenomy.yaml to route between a weak and a strong model." : "";
    }

    state.data = data;
    state.renders += 1;
    document.body.dataset.renders = String(state.renders);
  }

  // This month so far (cumulative), the forecast to month end with its interval, and the monthly budget line.
  // The x axis is the day of the month, so the month-end point sits at its day: on a category axis it was drawn one
  // step after the last day with spend (12-06, then 12-31 right beside it), the forecast line as steep as one day.
  function forecastChart(h) {
    const box = document.getElementById("chart-forecast").parentElement;
    const f = h.forecast;
    box.hidden = !f;
    if (!f) return;
    const month = new Date(f.month + "-01T00:00:00Z");
    const last = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 0)).toISOString().slice(0, 10);
    const labels = f.days.map((d) => d.day).concat(f.days.length && f.days[f.days.length - 1].day === last ? [] : [last]);
    const dayOf = (label) => Number(label.slice(8, 10));
    // Each line's points are the API's exact strings (null where it has none), drawn as numbers (C.moneyData).
    const at = (value, where) => labels.map((_, i) => (where(i) ? value : null));
    const line = (name, amounts) => Object.assign(C.moneyData(name, amounts),
      { data: amounts.map((a, i) => ({ x: dayOf(labels[i]), y: a === null ? null : num(a) })) });
    const end = labels.length - 1;
    const datasets = [
      Object.assign(line("spent so far", labels.map((_, i) => (i < f.days.length ? f.days[i].cumulative_usd : null))),
                    { borderColor: color(0), pointRadius: 0 }),
      Object.assign(line("forecast", labels.map((_, i) => (i === f.days.length - 1 ? f.month_to_date_usd
        : i === end ? f.forecast_usd : null))), { borderColor: color(1), borderDash: [4, 3], spanGaps: true }),
      Object.assign(line("interval", at(f.high_usd, (i) => i === end)), { borderColor: color(1), pointStyle: "line",
        pointRadius: 8, showLine: false }),
      Object.assign(line("low", at(f.low_usd, (i) => i === end)), { borderColor: color(1), pointStyle: "line",
        pointRadius: 8, showLine: false }),
    ];
    // a budget far above the spend would flatten the lines; the card's text still states it
    if (h.monthly_budget_usd !== null && num(h.monthly_budget_usd) <= 5 * num(f.high_usd)) {
      datasets.push(Object.assign(line("budget", labels.map(() => h.monthly_budget_usd)), { borderColor: color(2),
                                  borderDash: [2, 2], pointRadius: 0, spanGaps: true }));
    }
    // its CSV: the amounts of record a day (a chart's own rows would be floats: 1e-7 for $0.0000001)
    C.csvRows.forecast = labels.map((day, i) => Object.fromEntries([["day", day],
      ...datasets.map((d) => [d.label.replace(/ /g, "_") + "_usd", d.exact[i] == null ? "" : d.exact[i]])]));
    const days = dayOf(last), mm = f.month.slice(5);
    // the days as MM-DD (the card names the month; a tooltip the whole date), a week apart and the month's last:
    // four whole dates beside a money axis in the millions ran together on a phone
    const ticks = [1, 8, 15, 22].filter((d) => days - d >= 4).concat([days]);
    draw("chart-forecast", { type: "line", data: { datasets: datasets }, options: {
      plugins: Object.assign({ legend: { display: false } }, moneyTips, { tooltip: { callbacks: {
        title: (items) => (items.length ? labels[items[0].dataIndex] : ""),
        label: moneyTips.tooltip.callbacks.label } } }),
      scales: { x: { type: "linear", min: 1, max: days, afterBuildTicks: (axis) => {
                       axis.ticks = ticks.map((d) => ({ value: d }));
                     },
                     ticks: { autoSkip: false, maxRotation: 0,
                              callback: (v) => mm + "-" + String(v).padStart(2, "0") } },
                y: { beginAtZero: true, ticks: { callback: (v) => C.usdTick(v) } } } } },
    "forecast");
  }

  const pctText = (x) => Math.round(100 * x) + "%";

  // The group-by and top-N selectors redraw from the data at hand (the offline report has every grouping).
  for (const id of ["group-by", "top-n"]) {
    document.getElementById(id).addEventListener("change", () => {
      if (state.data) render(state.data);
    });
  }

  function showError(message) {
    const box = document.getElementById("error");
    // The figures on the page are still the last good load's: say so, and grey them out, so they are not
    // read as the answer to the filters that failed.
    const stale = !!message && state.data !== null;
    box.textContent = message ? message + (stale ? " The figures below are from the last successful load." : "") : "";
    box.style.display = message ? "block" : "none";
    document.body.classList.toggle("stale", stale);
    state.error = message || null;
  }

  // --- served mode: fetch, and refetch on every filter change ------------------------------------------
  function query(form) {
    const params = new URLSearchParams();
    for (const name of ["since", "provider", "model", "task", "tag"]) {
      if (form.elements[name].value) params.set(name, form.elements[name].value);
    }
    const to = form.elements.to.value;
    if (to) {  // the form's "to" day is inclusive; the API's until is exclusive
      const next = new Date(to + "T00:00:00Z");
      next.setUTCDate(next.getUTCDate() + 1);
      params.set("until", next.toISOString().slice(0, 10));
    }
    return params.toString();
  }

  // With auth on, the gateway wants a virtual key; it is kept for this browser tab only.
  const KEY_ITEM = "tokenomy-dashboard-key";

  async function getJson(url) {
    const key = sessionStorage.getItem(KEY_ITEM);
    const response = await fetch(url, { headers: key ? { Authorization: "Bearer " + key } : {} });
    const body = await response.json();
    if (response.status === 401) askForKey(body.detail);
    if (!response.ok) throw Object.assign(new Error(body.detail || response.statusText), { status: response.status });
    return body;
  }

  function askForKey(message) {
    const form = document.getElementById("auth");
    document.getElementById("auth-message").textContent = message + " ";
    form.hidden = false;
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_ITEM, form.elements.key.value.trim());
      location.reload();
    };
  }

  async function load(api, form) {
    // Dates out of order are the form's, in its words: the API would refuse all thirteen queries naming its own
    // parameters and a day nobody picked ("since=2026-12-01 is not before until=2026-11-21").
    const from = form.elements.since.value, to = form.elements.to.value;
    if (from && to && from > to) {
      showError("From " + from + " is after To " + to + ": swap them, or clear one.");
      return;
    }
    const qs = query(form);
    try {
      const parts = await Promise.all(SECTIONS.map((name) => getJson(api + "/api/" + name + "?" + qs)));
      const data = {};
      SECTIONS.forEach((name, i) => (data[name] = parts[i]));
      showError(null);
      render(data);
    } catch (err) {
      showError("Could not load the dashboard data: " + err.message);
    }
  }

  async function serve(api) {
    const form = document.getElementById("filters");
    try {
      const options = await getJson(api + "/api/filters");
      for (const [name, values] of [["provider", options.providers], ["model", options.models],
                                    ["task", options.tasks], ["tag", options.tags]]) {
        for (const value of values) form.elements[name].add(new Option(value, value));
      }
      // A key with more values than the menu lists (a per-user tag) says so, rather than look complete.
      for (const [key, count] of Object.entries(options.tags_cut || {})) {
        const note = new Option(key + "=… (" + count + " values; the first ones listed)", "");
        note.disabled = true;
        form.elements.tag.add(note);
      }
      for (const name of ["since", "to"]) {
        form.elements[name].min = options.first_day || "";
        form.elements[name].max = options.last_day || "";
      }
    } catch (err) {
      // No key, or one the gateway refused: the key form asks for it (the page reloads with it), and every section
      // would be refused the same way.
      if (err.status === 401) return;
      showError("Could not load the filter values: " + err.message);
    }
    form.addEventListener("change", () => load(api, form));
    form.addEventListener("reset", () => setTimeout(() => load(api, form), 0));
    await load(api, form);
  }

  if (window.TOKENOMY_DATA) {
    render(window.TOKENOMY_DATA);
  } else {
    serve(document.body.dataset.api);
  }
})();
