// Tokenomy console panels: money formatting, CSV download, the headline, "what to change", spend by group,
// budgets and alerts. Loaded before dashboard.js, which calls TokenomyConsole.render(data) on every redraw.
(function () {
  "use strict";

  const num = (x) => (x === null || x === undefined || x === "" ? 0 : Number(x));
  // Money: tokenomy.money's one rule for an amount, so the console prints what `tokenomy report` prints: plain
  // notation, six decimal places, rounded half to even from the API's exact decimal string (never through a
  // float: $0.0000005 and a ledger's 18-digit totals stay exact), thousands grouped ("$1,234.500000", as
  // money.usd writes it for people). A chart's number is written out plain first.
  const PLACES = 6;
  function usd(x) {
    let text = x === null || x === undefined || x === "" ? "0" : typeof x === "number" ? x.toFixed(12) : String(x);
    const negative = text.startsWith("-");
    const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
    let units = BigInt((whole || "0") + fraction.slice(0, PLACES).padEnd(PLACES, "0"));
    const rest = fraction.slice(PLACES);
    if (rest[0] > "5" || (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) || units % 2n === 1n))) units += 1n;
    const digits = units.toString().padStart(PLACES + 1, "0");
    const grouped = digits.slice(0, -PLACES).replace(/\B(?=(\d{3})+$)/g, ",");
    return (negative && units !== 0n ? "-$" : "$") + grouped + "." + digits.slice(-PLACES);
  }
  // A chart draws numbers, but its tooltip prints the amount of record: each money dataset carries the API's exact
  // strings as `exact` (a float read back printed 123456.0526665 as $123,456.052667, not ...666).
  const moneyTips = { tooltip: { callbacks: { label: (item) => item.dataset.label + ": " +
    usd(item.dataset.exact ? item.dataset.exact[item.dataIndex] : item.raw) } } };
  // Axis ticks are positions on a scale, not amounts: short labels ($0.0004, $1.50), never a figure of record.
  function usdTick(x) {
    const abs = Math.abs(num(x));
    const text = abs === 0 ? "0" : abs >= 1 ? abs.toLocaleString("en-US", { maximumFractionDigits: 2 })
      : abs.toLocaleString("en-US", { maximumSignificantDigits: 2, maximumFractionDigits: 20 });
    return (num(x) < 0 ? "-$" : "$") + text;
  }
  // A category axis of long names (model ids, "name (key id)") shortens them to 22 characters, so a phone keeps the
  // bars and the names are not cut at the canvas edge; the tooltip has the whole name.
  const nameTicks = () => ({ callback: function (v) {
    const text = String(this.getLabelForValue(v));
    return text.length > 22 ? text.slice(0, 21) + "…" : text;
  } });
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(Math.abs(x) < 0.1 ? 1 : 0) + "%");
  const day = (iso) => (iso ? iso.slice(0, 10) : "");
  // A period [since, until) shown with its inclusive last day.
  function span(p) {
    if (!p) return "";
    const last = new Date(new Date(p.until).getTime() - 1).toISOString().slice(0, 10);
    return day(p.since) + " → " + last;
  }

  // A time axis from its first label to its last with no step left out ("day": YYYY-MM-DD, "hour": YYYY-MM-DDTHH:00,
  // "month": YYYY-MM, all UTC): an idle day is a zero bar, not a gap the axis closes up (spend after two idle weeks
  // was drawn as the next day's).
  function timeAxis(labels, unit) {
    const sorted = [...new Set(labels)].sort();
    if (sorted.length < 2) return sorted;
    const parse = { day: (s) => s + "T00:00:00Z", hour: (s) => s + ":00Z", month: (s) => s + "-01T00:00:00Z" }[unit];
    const width = { day: 10, hour: 13, month: 7 }[unit];
    const out = [];
    const last = new Date(parse(sorted[sorted.length - 1]));
    for (let t = new Date(parse(sorted[0])); t <= last; ) {
      out.push(t.toISOString().slice(0, width) + (unit === "hour" ? ":00" : ""));
      if (unit === "day") t.setUTCDate(t.getUTCDate() + 1);
      else if (unit === "hour") t.setUTCHours(t.getUTCHours() + 1);
      else t.setUTCMonth(t.getUTCMonth() + 1);
    }
    return out;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  // --- CSV: every chart and table keeps the rows it was drawn from -------------------------------------
  const csvRows = {};
  function csvText(rows) {
    if (!rows || !rows.length) return "";
    const columns = Object.keys(rows[0]);
    const cell = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    return [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
  }
  function download(name) {
    const blob = new Blob([csvText(csvRows[name])], { type: "text/csv" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "tokenomy-" + name + ".csv" });
    document.body.append(link);
    link.click();
    link.remove();
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-csv]");
    if (button) download(button.dataset.csv);
  });

  // An empty state says why and what to do, instead of drawing blank axes.
  function empty(sectionId, message) {
    const section = document.getElementById(sectionId);
    const box = section.querySelector(".empty-state");
    box.textContent = message || "";
    box.hidden = !message;
    for (const part of section.querySelectorAll(".chart, .has-data")) part.hidden = !!message;
  }

  // --- headline -------------------------------------------------------------------------------------------
  function headline(h) {
    const set = (id, text) => (document.getElementById(id).textContent = text);
    set("head-spend", usd(h.spend_usd));
    set("head-period", h.period ? span(h.period) : "no calls in this range");
    if (h.previous_period && !(num(h.spend_usd) === 0 && num(h.previous_spend_usd) === 0)) {
      const delta = num(h.delta_usd);  // its sign only: the figure printed is the API's exact string
      set("head-delta", (delta >= 0 ? "+" : "") + usd(h.delta_usd) + (h.delta_pct === null ? "" : " (" +
        (h.delta_pct >= 0 ? "+" : "") + pct(h.delta_pct) + ")"));
      document.getElementById("head-delta").className = delta > 0 ? "up" : delta < 0 ? "down" : "";
      set("head-previous", "vs " + usd(h.previous_spend_usd) + " in " + span(h.previous_period) +
        (num(h.previous_spend_usd) === 0 ? " (no calls then)" : ""));
    } else {
      set("head-delta", "");
      set("head-previous", h.previous_period ? "no calls in this period or the one before it" : "");
    }
    const f = h.forecast;
    if (f) {
      set("head-forecast", usd(f.forecast_usd));
      set("head-interval", Math.round(100 * f.level) + "% interval " + usd(f.low_usd) + " – " + usd(f.high_usd) +
        " for " + f.month + " (month to date " + usd(f.month_to_date_usd) + ")");
    } else {
      set("head-forecast", "–");
      set("head-interval", h.forecast_note || "");
    }
    const over = f && h.monthly_budget_usd !== null && num(f.forecast_usd) > num(h.monthly_budget_usd);
    set("head-budget", h.monthly_budget_usd === null ? "no monthly budget set (`tokenomy keys team-budget`)"
      : "budget " + usd(h.monthly_budget_usd) + "/month" + (over ? " — forecast is over it" : ""));
    document.getElementById("head-budget").className = over ? "up" : "";
    set("head-alerts", String(h.open_alerts));
  }

  // --- what to change -------------------------------------------------------------------------------------
  function levers(s) {
    const list = document.getElementById("levers");
    list.replaceChildren();
    const rows = s.levers || [];
    csvRows.levers = rows.map((r) => ({ lever: r.lever, monthly_saving_usd: r.monthly_saving_usd,
                                        assumption: r.assumption, apply: r.apply }));
    if (!rows.length) {
      document.getElementById("levers-note").textContent = "";
      empty("sec-levers", "No lever can be priced on this selection (" + (s.note || "no calls") + "). Widen the " +
        "dates or clear the filters; `tokenomy plan savings` prices the same levers from the command line.");
      return;
    }
    empty("sec-levers", null);
    for (const r of rows.concat(s.provisioned ? [s.provisioned] : [])) {
      const dollars = r.monthly_saving_usd === null ? "not priced" : usd(r.monthly_saving_usd) + "/month";
      list.append(el("li", { "data-lever": r.lever, class: num(r.monthly_saving_usd) > 0 ? "saves" : "" }, [
        el("div", { class: "lever-head" }, [el("b", { text: r.lever.replace("_", " ") }),
                                             el("span", { class: "dollars", text: dollars })]),
        el("div", { class: "assumption", text: "Assumes: " + r.assumption }),
        el("div", { class: "apply", text: "Apply: " + r.apply })]));
    }
    const saving = rows.some((r) => num(r.monthly_saving_usd) > 0);
    // `plan savings`'s warnings (calls left out unpriced, list prices unlike the recorded cost) qualify every figure
    const warnings = (s.warnings || []).map((w) => " Warning: " + w + (/[.!]$/.test(w) ? "" : ".")).join("");
    document.getElementById("levers-note").textContent = (saving
      ? "All saving levers together (" + s.compounded_order.join(" → ") + "): " + usd(s.compounded_monthly_saving_usd) +
        "/month of " + usd(s.current_monthly_cost_usd) + "/month now; " + s.note + "."
      : "No lever saves money on these calls under the default assumptions (tag latency-tolerant calls, or give " +
        "`tokenomy plan savings` a routing result). " + s.note + ".") + warnings;
  }

  // --- spend by group and by usage type, against the previous period -------------------------------------
  function groupRows(data, name) {
    return (data.breakdown.groups[name] || []).map((r) => ({ group: name, key: r.key, name: r.name || "",
      cost_usd: r.cost_usd, previous_cost_usd: r.previous_cost_usd, delta_usd: r.delta_usd, calls: r.calls }));
  }

  const label = (r) => (r.name ? r.name + " (" + r.key + ")" : r.key);  // a key's name beside its id
  // A chart dataset of amounts: numbers to draw, the exact strings for its tooltip (moneyTips).
  const moneyData = (name, amounts) => ({ label: name, data: amounts.map(num), exact: amounts });

  function spendTable(tableId, rows, total) {
    const body = document.querySelector("#" + tableId + " tbody");
    body.replaceChildren(...rows.map((r) => {
      const delta = num(r.delta_usd);  // its sign only: the API subtracted in Decimal
      return el("tr", {}, [el("td", { text: label(r) }), el("td", { class: "num", text: usd(r.cost_usd) }),
        el("td", { class: "num", text: total ? pct(num(r.cost_usd) / total) : "–" }),
        el("td", { class: "num", text: usd(r.previous_cost_usd) }),
        el("td", { class: "num " + (delta > 0 ? "up" : delta < 0 ? "down" : ""),
                   text: (delta > 0 ? "+" : "") + usd(r.delta_usd) })]);
    }));
  }

  function groups(data, draw) {
    const by = document.getElementById("group-by").value;
    const top = Number(document.getElementById("top-n").value);
    const all = groupRows(data, by);  // the largest 50: the API's count says how many there are in all
    const count = (data.breakdown.group_counts || {})[by] || all.length;
    const rows = all.slice(0, top);
    csvRows["spend-by-" + by] = all;
    document.querySelector("#sec-groups button[data-csv]").dataset.csv = "spend-by-" + by;
    document.getElementById("groups-title").textContent = "Spend by " + by +
      (count > top ? " (top " + top + " of " + count + ")" : "");
    const period = data.breakdown.period;
    if (!rows.length) {
      empty("sec-groups", "No calls in this range, so nothing to group. Widen the date range or press Reset.");
    } else {
      empty("sec-groups", null);
      draw("chart-groups", "spend-by-" + by, rows.map(label), [
        moneyData("this period (" + span(period) + ")", rows.map((r) => r.cost_usd)),
        moneyData("previous period (" + span(data.breakdown.previous_period) + ")",
                  rows.map((r) => r.previous_cost_usd))], true);
      // share of the period's spend (the rows beyond the top 50 count too)
      spendTable("table-groups", rows, num(data.headline.spend_usd));
    }
    const types = groupRows(data, "usage type");
    csvRows["spend-by-usage-type"] = types;
    if (!types.some((r) => num(r.cost_usd) || num(r.previous_cost_usd))) {
      empty("sec-types", "No spend in this range or the one before it. Widen the date range or press Reset.");
    } else {
      empty("sec-types", null);
      draw("chart-types", "spend-by-usage-type", types.map((r) => r.key), [
        moneyData("this period", types.map((r) => r.cost_usd)),
        moneyData("previous period", types.map((r) => r.previous_cost_usd))], false);
    }
  }

  // --- budgets and alerts ---------------------------------------------------------------------------------
  function budgets(b) {
    const list = document.getElementById("budgets");
    const rows = b.teams.concat(b.keys);
    csvRows.budgets = rows.map((r) => ({ kind: r.kind, id: r.id, name: r.name, period: r.period,
      period_start: r.period_start, spent_usd: r.spent_usd, budget_usd: r.budget_usd }));
    list.replaceChildren(...rows.map((r) => {
      const used = r.used === null ? null : r.used;
      const fill = el("div", { class: "fill " + (used >= 1 ? "over" : used >= 0.8 ? "near" : "") });
      fill.style.width = (used === null ? 0 : Math.min(used, 1) * 100) + "%";
      const label = r.kind + " " + r.name + (r.kind === "key" && r.name !== r.id ? " (" + r.id + ")" : "");
      return el("div", { class: "budget", id: "budget-" + r.kind + "-" + r.id }, [
        el("div", { class: "budget-label" }, [el("span", { text: label }), el("span", { class: "budget-figures",
          text: usd(r.spent_usd) + (r.budget_usd === null ? " (no budget)" : " of " + usd(r.budget_usd) +
            (r.period === "total" ? " in total" : " this " + r.period) + " (" + pct(used) + ")") })]),
        el("div", { class: "bar" }, [fill])]);
    }));
    empty("sec-budgets", rows.length ? null : "No virtual keys or team budgets in this ledger: create them with " +
      "`tokenomy keys create --budget-usd 50 --team T` and `tokenomy keys team-budget T --budget-usd 200`.");
    document.getElementById("budgets-note").textContent = rows.length ? "Spent in each budget's own period as of " +
      day(b.as_of) + " (the end of the selected range), as the gateway counts it." : "";
  }

  function alerts(a) {
    const list = document.getElementById("alerts");
    const anomalies = a.anomalies || [];
    csvRows.alerts = a.alerts.concat(anomalies.map((r) => ({ kind: "anomaly_" + r.kind, subject: r.model,
      message: usd(r.actual_usd) + "/day, expected " + usd(r.expected_low_usd) + "–" + usd(r.expected_high_usd),
      when: r.day })));
    list.replaceChildren(...a.alerts.map((r) => el("li", { "data-kind": r.kind }, [
      el("b", { text: r.kind.replace(/_/g, " ") + " · " + r.subject }), el("span", { text: " " + r.message +
        (r.when ? " (" + r.when + ")" : "") })])));
    document.getElementById("anomalies").replaceChildren(...anomalies.map((r) => el("li", { "data-day": r.day }, [
      el("b", { text: r.day + " · " + r.model + " · " + r.kind }), el("span", { text: " spent " + usd(r.actual_usd) +
        " a day, expected " + usd(r.expected_low_usd) + " – " + usd(r.expected_high_usd) })])));
    document.getElementById("anomalies-title").hidden = !anomalies.length;
    empty("sec-alerts", a.alerts.length || anomalies.length ? null : "No open alerts as of " + day(a.as_of) +
      " and no spend anomaly in this range: no budget is exceeded, no spike or drift (needs 28 active days per " +
      "model), no cache or routing drift." + (a.note ? " " + a.note : ""));
  }

  window.TokenomyConsole = {
    num: num, usd: usd, usdTick: usdTick, moneyTips: moneyTips, moneyData: moneyData, pct: pct, span: span, el: el,
    empty: empty, csvRows: csvRows, csvText: csvText, timeAxis: timeAxis, nameTicks: nameTicks,
    render: function (data, draw) {
      headline(data.headline);
      levers(data.savings);
      groups(data, draw);
      budgets(data.budgets);
      alerts(data.alerts);
    },
  };
})();
