// Tokenomy console: the provider view — spend by provider per month, model family per day (14 days), tokens
// by usage type (30 days), hourly tokens by provider (2 days), and the "Model | Cached | Monthly cost | Token
// usage" table. Metered calls and imported bills alike; the data comes with the page's other sections.
(function () {
  "use strict";

  const C = window.TokenomyConsole;
  const uniq = (values) => [...new Set(values)].sort();

  // Stacked bars of `rows` with x from `xKey` (a time axis in steps of `unit`), one dataset per `seriesKey`,
  // heights from `valueKey`; an amount's (`money`) tooltip prints the API's exact string by the money rule (Chart.js
  // printed $0.0000001 as "0" and $123,456.0526665 as "123,456.053").
  function stacked(draw, color, id, csvName, rows, xKey, unit, seriesKey, valueKey, money) {
    const xs = C.timeAxis(rows.map((r) => r[xKey]), unit);
    const series = uniq(rows.map((r) => r[seriesKey]));
    const datasets = series.map((s, i) => {
      const values = xs.map((x) => {
        const hit = rows.find((r) => r[xKey] === x && r[seriesKey] === s);
        return hit ? hit[valueKey] : 0;
      });
      return Object.assign(money ? C.moneyData(s, values) : { label: s, data: values.map(C.num) },
                           { backgroundColor: color(i) });
    });
    // an hour's tick is "12-06 04:00" (the title says UTC; the tooltip has the whole stamp): "2026-12-06T04:00" was
    // turned on its side and ran into the next
    const x = unit === "hour" ? { stacked: true, ticks: { callback: function (v) {
      return String(this.getLabelForValue(v)).slice(5).replace("T", " "); } } } : { stacked: true };
    draw(id, { type: "bar", data: { labels: xs, datasets: datasets },
               options: { plugins: money ? C.moneyTips : {}, scales: { x: x, y: Object.assign(
                 { stacked: true, beginAtZero: true }, money ? { ticks: { callback: (v) => C.usdTick(v) } } : {}) } } },
         csvName);
  }

  function render(p, draw, color) {
    const none = p && (p.monthly.length || p.models.length) ? null
      : "No spend from any provider in this range. Import a bill (`tokenomy import openai-usage`, `anthropic-usage`, "
        + "`focus`, `gcp-billing`) or send traffic through `tokenomy serve`.";
    C.empty("sec-providers", none);
    if (none) return;
    C.csvRows["provider-monthly"] = p.monthly;
    stacked(draw, color, "chart-provider-monthly", null, p.monthly, "month", "month", "provider", "cost_usd", true);
    C.csvRows["family-daily"] = p.family_daily;
    stacked(draw, color, "chart-family-daily", null, p.family_daily, "day", "day", "family", "cost_usd", true);
    const kinds = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "batch_tokens"];
    C.csvRows["tokens-by-usage-type"] = p.usage_types;
    draw("chart-provider-types", { type: "bar", data: { labels: p.usage_types.map((r) => r.provider),
      datasets: kinds.map((k, i) => ({ label: k.replace("_tokens", "").replace("_", " "), backgroundColor: color(i),
                                       data: p.usage_types.map((r) => r[k]) })) } }, null);
    C.csvRows["hourly-tokens"] = p.hourly;
    stacked(draw, color, "chart-provider-hourly", null, p.hourly, "hour", "hour", "provider", "tokens");
    C.csvRows["model-cached-monthly"] = p.models;
    const body = document.querySelector("#table-provider-models tbody");
    body.replaceChildren(...p.models.map((r) => C.el("tr", {}, [
      C.el("td", { text: r.model }), C.el("td", { text: r.cached }),
      C.el("td", { class: "num", text: C.usd(r.monthly_cost_usd) }),
      C.el("td", { class: "num", text: r.token_usage.toLocaleString("en-US") })])));
  }

  window.TokenomyProviders = { render: render };
})();
