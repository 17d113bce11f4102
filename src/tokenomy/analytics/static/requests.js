// Tokenomy console: the request log (latest calls under the filters) and the drill-down into one request's
// attempts (ledger rows sharing a request_id). The rows and attempts come with the data; nothing is fetched here.
(function () {
  "use strict";

  const C = window.TokenomyConsole;
  const PAGE = 25;
  let log = { rows: [], attempts: {}, total: 0, shown: 0 };
  let visible = PAGE;
  const ms = (x) => (x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-US") + " ms");
  // "in 34,481 · out 3,138": counts grouped as every other count on the page; a pair never split across lines
  const tokens = (r) => [["in", r.input_tokens], ["out", r.output_tokens], ["cache\u00a0rd", r.cache_read_tokens],
                         ["cache\u00a0wr", r.cache_write_tokens]].filter(([, n]) => n)
                         .map(([k, n]) => k + "\u00a0" + n.toLocaleString("en-US")).join(" · ") || "0";

  function matches(r, outcome, text) {
    if (outcome && r.outcome !== outcome) return false;
    if (!text) return true;
    return [r.model, r.route, r.tier, r.task, r.request_id, r.key_id, r.prompt_text]
      .some((v) => v && String(v).toLowerCase().includes(text));
  }

  function row(r) {
    const tr = C.el("tr", { "data-request": r.request_id || "", class: r.outcome === "ok" ? "" : "failed" }, [
      C.el("td", { text: r.ts.replace("T", " ").slice(0, 19) }), C.el("td", { text: r.route || "–" }),
      C.el("td", { text: r.tier || "–" }), C.el("td", { text: r.model }), C.el("td", { text: tokens(r) }),
      C.el("td", { class: "num", text: C.usd(r.cost_usd) }), C.el("td", { class: "num", text: ms(r.latency_ms) }),
      C.el("td", { text: r.outcome + (r.attempt > 1 ? " (attempt " + r.attempt + ")" : "") })]);
    tr.addEventListener("click", () => drill(r));
    return tr;
  }

  function draw() {
    const outcome = document.getElementById("log-outcome").value;
    const text = document.getElementById("log-search").value.trim().toLowerCase();
    const rows = log.rows.filter((r) => matches(r, outcome, text));
    // An imported bill's rows are a provider's day of usage, not calls: the log leaves them out and says so.
    const bills = log.bill_rows ? " The range also holds " + log.bill_rows + " row(s) of imported bills: spend, " +
      "not calls, counted in the figures above and the provider view." : "";
    C.csvRows.requests = rows;
    document.querySelector("#table-requests tbody").replaceChildren(...rows.slice(0, visible).map(row));
    document.getElementById("log-more").hidden = rows.length <= visible;
    document.getElementById("log-note").textContent = "Showing " + Math.min(visible, rows.length) + " of " +
      rows.length + (outcome || text ? " matching" : "") + " (the latest " + log.shown + " of " + log.total +
      " calls in the range; CSV has all " + rows.length + "). Click a row for its attempts." + bills;
    C.empty("sec-requests", log.total ? (rows.length ? null : "No call among the latest " + log.shown +
      " matches this outcome and text; clear them.") : "No calls in this range" + (log.bill_rows ? "." + bills
      : ": widen the dates or press Reset."));
    if (!log.total || !rows.length) document.getElementById("log-note").textContent = "";
  }

  // One request's attempts: every retry and fallback, with the stored prompt where there is one.
  function drill(r) {
    const box = document.getElementById("drill");
    const attempts = (r.request_id && log.attempts[r.request_id]) || [r];
    C.csvRows.attempts = attempts;
    const head = ["attempt", "time (UTC)", "provider", "model", "tokens", "cost", "latency", "TTFT", "outcome"];
    const table = C.el("table", { id: "table-attempts" }, [
      C.el("thead", {}, [C.el("tr", {}, head.map((h) => C.el("th", ["cost", "latency", "TTFT"].includes(h)
        ? { class: "num", text: h } : { text: h })))]),
      C.el("tbody", {}, attempts.map((a) => C.el("tr", {}, [
        C.el("td", { text: String(a.attempt) }), C.el("td", { text: a.ts.replace("T", " ").slice(0, 19) }),
        C.el("td", { text: a.provider }), C.el("td", { text: a.model }), C.el("td", { text: tokens(a) }),
        C.el("td", { class: "num", text: C.usd(a.cost_usd) }), C.el("td", { class: "num", text: ms(a.latency_ms) }),
        C.el("td", { class: "num", text: ms(a.ttft_ms) }),
        C.el("td", { text: a.outcome + (a.error_type ? " (" + a.error_type + ")" : "") +
          (a.rejected ? " · rejected: " + a.rejected : "") })])))]);
    // what the attempts cost together, as the API summed it in Decimal (a float sum was a digit off on large amounts)
    const total = (r.request_id && (log.request_costs || {})[r.request_id]) || r.cost_usd;
    const prompt = attempts.map((a) => a.prompt_text).find((p) => p);
    box.replaceChildren(
      C.el("h3", { text: "Request " + (r.request_id || "(no request id)") + " · " + attempts.length + " attempt(s) · " +
        C.usd(total) + " · task " + (r.task || "–") + " · key " + (r.key_id || "–") }),
      C.el("div", { class: "scroll" }, [table]),
      C.el("p", { class: "note", text: prompt ? "" : "The prompt was not stored for this request (the gateway " +
        "stores prompt text only where configured); answers are never stored in the ledger." }),
      ...(prompt ? [C.el("pre", { class: "prompt", text: prompt })] : []),
      C.el("button", { type: "button", "data-csv": "attempts", text: "CSV" }));
    box.hidden = false;
  }

  for (const id of ["log-outcome", "log-search"]) {
    document.getElementById(id).addEventListener("input", () => {
      visible = PAGE;
      draw();
    });
  }
  document.getElementById("log-more").addEventListener("click", () => {
    visible += PAGE;
    draw();
  });

  window.TokenomyRequests = {
    render: function (requests) {
      log = requests;
      visible = PAGE;
      const select = document.getElementById("log-outcome");
      const current = select.value;
      const outcomes = [...new Set(log.rows.map((r) => r.outcome))].sort();
      select.replaceChildren(new Option("any outcome", ""), ...outcomes.map((o) => new Option(o, o)));
      select.value = outcomes.includes(current) ? current : "";
      document.getElementById("drill").hidden = true;
      draw();
    },
  };
})();
