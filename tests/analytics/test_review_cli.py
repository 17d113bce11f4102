"""`tokenomy review` as a user runs it: its input refused in one line, its figures those of `tokenomy report`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tokenomy.cli import main
from tokenomy.ledger.events import UsageEvent
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tokenomy", *args])
    try:
        main()
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _calls(ledger, end: datetime, days: int = 60) -> None:
    events = []
    for day in range(days):
        event = UsageEvent(
            ts=end - timedelta(days=day, hours=1),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=900,
            output_tokens=90,
        )
        events.append(event.apply_cost(compute_cost(event.usage, "gpt-4o-mini")))
    open_store(ledger).write(events)


def test_a_review_ending_after_now_is_refused_naming_until(ledger_path, monkeypatch, capsys) -> None:
    # `review --until` a week ahead reviewed days with no calls yet: spend "fell" against the previous period, the
    # month-end forecast and every $/month were scaled from a period partly to come, and the review was saved as the
    # one the next compares with.
    now = datetime.now(UTC)
    _calls(ledger_path, now)
    ahead = (now + timedelta(days=7)).strftime("%Y-%m-%d")
    code, out, err = _run(
        monkeypatch, capsys, "review", "--ledger", str(ledger_path), "--since", "30d", "--until", ahead
    )
    assert code == 2 and out == "", (code, out, err)
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: --until {ahead} 00:00 UTC is after now (") and "leave --until out" in line, line
    store = open_store(ledger_path)
    saved = store.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'tokenomy_reviews'")
    assert saved[0]["n"] == 0 or store.query("SELECT COUNT(*) AS n FROM tokenomy_reviews")[0]["n"] == 0
    # up to now is a review
    code, out, err = _run(monkeypatch, capsys, "review", "--ledger", str(ledger_path), "--since", "30d", "--json")
    assert code == 0, err


@pytest.mark.parametrize("until", ["7d", "2026-01-01"])
def test_a_review_ending_in_the_past_is_taken(until, ledger_path, monkeypatch, capsys) -> None:
    _calls(ledger_path, datetime(2026, 1, 1, tzinfo=UTC) if until[0] == "2" else datetime.now(UTC) - timedelta(days=7))
    code, out, err = _run(
        monkeypatch, capsys, "review", "--ledger", str(ledger_path), "--since", "30d", "--until", until
    )
    assert code == 0 and out.startswith("Review "), (code, out, err)


def test_a_review_of_no_usage_says_nothing_was_kept_in_json_and_fails_an_html_page(
    ledger_path, tmp_path, monkeypatch, capsys
) -> None:
    # With no usage, `--json` printed a body of zeros with an id, as any stored review, though none was kept, and
    # `--html F` wrote no page and exited 0, so a script that publishes F went on without it.
    open_store(ledger_path)
    page = tmp_path / "review.html"
    code, out, err = _run(monkeypatch, capsys, "review", "--ledger", str(ledger_path), "--json")
    body = json.loads(out)
    assert code == 0 and body["saved"] is False and "Nothing was saved" in body["note"], (code, out, err)
    code, out, err = _run(monkeypatch, capsys, "review", "--ledger", str(ledger_path), "--html", str(page))
    assert code == 1 and not page.exists(), (code, out, err)
    assert f"Nothing was saved and {page} was not written." in out.replace("\n", " "), out
    # with usage, the review is kept and says so
    _calls(ledger_path, datetime.now(UTC))
    code, out, err = _run(monkeypatch, capsys, "review", "--ledger", str(ledger_path), "--json", "--html", str(page))
    assert code == 0 and json.loads(out)["saved"] is True and page.exists(), (code, out, err)


def test_a_review_of_an_earlier_quarter_compares_with_the_review_before_it(ledger_path, tmp_path) -> None:
    # Run after this quarter's review, last quarter's took this quarter's as its "previous review": findings of a
    # later period counted as still open or resolved, and a re-benchmark compared with results from after it.
    from tokenomy.analytics.review import run_review, save_review

    now = datetime(2026, 12, 1, tzinfo=UTC)
    _calls(ledger_path, now, days=365)
    store = open_store(ledger_path)
    oldest = run_review(store, days=90, until=now - timedelta(days=180), created_at=now - timedelta(days=2))
    save_review(store, oldest)
    latest = run_review(store, days=90, until=now, created_at=now - timedelta(days=1))
    save_review(store, latest)
    earlier = run_review(store, days=90, until=now - timedelta(days=90), created_at=now)
    assert earlier["previous_review"]["id"] == oldest["id"], earlier["previous_review"]
    # the next review of this quarter compares with this quarter's, the latest made that ended by then
    again = run_review(store, days=90, until=now)
    assert again["previous_review"]["id"] == latest["id"]


def test_the_header_says_the_period_is_in_utc_and_its_end_is_not_in_it(ledger_path, tmp_path, monkeypatch, capsys):
    # "Review 2026-11-06..2026-12-06" read as the two days included, in the reader's time zone
    _calls(ledger_path, datetime(2026, 12, 6, tzinfo=UTC))
    page = tmp_path / "review.html"
    args = ("review", "--ledger", str(ledger_path), "--since", "30d", "--until", "2026-12-06")
    code, out, err = _run(monkeypatch, capsys, *args, "--html", str(page))
    period = "2026-11-06 00:00 UTC to 2026-12-06 00:00 UTC (end excluded)"
    assert code == 0 and " ".join(out.split()).startswith(f"Review {period} (30 days): "), (code, out, err)
    assert f"<h1>Tokenomy review {period}</h1>" in page.read_text(encoding="utf-8")
