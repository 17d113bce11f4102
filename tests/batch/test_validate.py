"""Batch validation and splitting on a 1,000-record file with 20 malformed lines."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tokenomy.batch.formats import read_file
from tokenomy.batch.split import below_minimum, split_records
from tokenomy.batch.validate import validate_file

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def _write(path, n=1000, bad_every=50):
    bad_lines = {}
    rng = random.Random(7)
    kinds = ["json", "noid", "dup", "empty"]
    with open(path, "w") as fh:
        for i in range(1, n + 1):
            if i % bad_every == 0:
                kind = kinds[rng.randrange(4)]
                bad_lines[i] = kind
                fh.write(
                    {
                        "json": '{"id": "x", "prompt": \n',
                        "noid": json.dumps({"prompt": "p"}) + "\n",
                        "dup": json.dumps({"id": "r1", "prompt": "p"}) + "\n",
                        "empty": json.dumps({"id": f"e{i}", "prompt": "  "}) + "\n",
                    }[kind]
                )
            else:
                fh.write(json.dumps({"id": f"r{i}", "prompt": f"Say {i}.", "max_tokens": 4}) + "\n")
    return bad_lines


def test_every_bad_line_named_and_rest_priced(tmp_path):
    path = tmp_path / "in.jsonl"
    bad_lines = _write(path)
    report = validate_file(path, MODEL)
    assert [b.line for b in report.bad] == sorted(bad_lines)
    reasons = {b.line: b.reason for b in report.bad}
    for line, kind in bad_lines.items():
        word = {"json": "invalid JSON", "noid": "missing id", "dup": "duplicate id", "empty": "empty prompt"}[kind]
        assert word in reasons[line], (line, reasons[line])
    assert len(report.records) == 980
    assert report.batch_usd is not None and report.batch_usd < report.on_demand_usd
    assert report.output_tokens == 980 * 4


def test_split_respects_quotas(tmp_path):
    path = tmp_path / "in.jsonl"
    _write(path, n=250, bad_every=10**6)
    records, _ = read_file(path)
    jobs = split_records(records, {"max_records_per_file": 40, "max_records_per_job": 100, "max_bytes_per_file": 10**9})
    assert [sum(len(f) for f in j) for j in jobs] == [100, 100, 50]
    assert all(len(f) <= 40 for j in jobs for f in j)
    assert [r.id for j in jobs for f in j for r in f] == [r.id for r in records]
    assert "minimum of 100" in below_minimum(8, "aws.bedrock")
    assert below_minimum(100, "aws.bedrock") is None


def test_cli_validate_json(tmp_path):
    path = tmp_path / "in.jsonl"
    _write(path, n=200, bad_every=40)
    out = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(path), "--model", MODEL, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr  # bad lines: the report is printed and the status says so
    data = json.loads(out.stdout)
    assert data["bad_count"] == 5 and data["good_records"] == 195


def test_a_line_that_is_not_utf8_is_named_and_the_rest_still_parse(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        b'{"id": "a", "prompt": "Say hi."}\n{"id": "b", "prompt": "caf\xe9"}\n{"id": "c", "prompt": "Say bye."}\n'
    )
    records, bad = read_file(path)
    assert [r.id for r in records] == ["a", "c"]
    assert [(b.line, b.field) for b in bad] == [(2, "-")] and "not UTF-8" in bad[0].reason


def test_validate_an_empty_file_says_so_instead_of_quoting_a_job_minimum(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    out = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(path), "--model", MODEL, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr  # no good record: nothing can run
    notes = json.loads(out.stdout)["notes"]
    assert any("no valid records" in n and "empty" in n for n in notes), notes
    assert not any("minimum" in n for n in notes), notes  # was "0 records is below ...'s minimum of 100"


def test_odd_ids_boolean_caps_and_bad_system_name_their_field():
    from tokenomy.batch.formats import read_records

    lines = [
        '{"id": "a", "prompt": "hi", "max_tokens": true}',  # was accepted as max_tokens=1
        '{"id": {"x": 1}, "prompt": "hi"}',  # was accepted with the id "{'x': 1}"
        '{"custom_id": [1], "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}}',
        '{"id": "c", "prompt": "hi", "system": 5}',  # the reason text was put in the field column
        '{"id": 7, "prompt": "hi"}',
    ]
    good, bad = read_records(lines)
    assert [r.id for r in good] == ["7"]
    assert [(b.line, b.field) for b in bad] == [(1, "max_tokens"), (2, "id"), (3, "custom_id"), (4, "system")]
    assert "string or a list of text blocks" in bad[3].reason


def test_a_prompt_that_is_not_text_is_named_as_such_not_as_missing():
    from tokenomy.batch.formats import read_records

    good, bad = read_records(['{"id": "a", "prompt": 5}', '{"id": "b", "prompt": ["hi"]}', '{"id": "c"}'])
    assert good == []
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (1, "prompt", "5 is not text; write the prompt as a JSON string"),  # read "missing prompt or messages"
        (2, "prompt", "['hi'] is not text; write the prompt as a JSON string"),
        (3, "prompt", "missing prompt or messages"),
    ]


def test_a_plain_record_key_tokenomy_does_not_send_is_named_not_dropped(tmp_path):
    # `model`, `top_p` or a typo of `max_tokens` was ignored without a word: the record went out without it.
    from tokenomy.batch.formats import read_records

    good, bad = read_records(
        [
            '{"id": "a", "prompt": "hi", "model": "gpt-4o"}',
            '{"id": "b", "prompt": "hi", "max_token": 5}',
            '{"id": "c", "prompt": "hi", "messages": [{"role": "user", "content": "ho"}]}',
            '{"id": "d", "prompt": "hi", "system": "be brief", "max_tokens": 5, "temperature": 0}',
        ]
    )
    assert [r.id for r in good] == ["d"]
    keys = "id, prompt or messages, system, max_tokens, temperature"
    assert [(b.line, b.field, b.reason) for b in bad] == [
        (
            1,
            "model",
            f"not a key of a plain record ({keys}); remove it, or write the line as an OpenAI batch line "
            "(custom_id, method, url, body) to send other parameters",
        ),
        (
            2,
            "max_token",
            f"not a key of a plain record ({keys}); remove it, or write the line as an OpenAI batch "
            "line (custom_id, method, url, body) to send other parameters",
        ),
        (3, "prompt", "both prompt and messages given (only messages would be sent); keep one"),
    ]
    records = tmp_path / "r.jsonl"
    records.write_text('{"id": "a", "prompt": "hi", "topp": 0.5}\n{"id": "b", "prompt": "hi"}\n')
    out = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(records), "--model", MODEL],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "topp" in out.stdout and "Traceback" not in out.stderr, out.stdout + out.stderr


def test_plan_reports_bad_lines_and_exits_1_as_validate_does(tmp_path):
    from typer.testing import CliRunner

    from tokenomy.cli import app

    src = tmp_path / "plain_with_errors.jsonl"
    _write(src, n=12, bad_every=4)  # lines 4, 8 and 12 are bad
    runner = CliRunner()
    base = ["batch", "plan", str(src), "--model", MODEL, "--deadline", "06:00"]
    as_json = runner.invoke(app, [*base, "--json"])
    body = json.loads(as_json.stdout)
    # Was exit 0 with a plan on the 9 good records and not a word about the 3 lines left out.
    assert as_json.exit_code == 1 and body["records"] == 9 and body["bad_count"] == 3
    assert [b["line"] for b in body["bad_lines"]] == [4, 8, 12]
    validated = runner.invoke(app, ["batch", "validate", str(src), "--model", MODEL, "--json"])
    assert validated.exit_code == 1 and json.loads(validated.stdout)["bad_lines"] == body["bad_lines"]
    shown = runner.invoke(app, base)
    assert shown.exit_code == 1 and "3 bad lines" in shown.stdout and "3 bad line(s) left out" in shown.stdout
    clean = tmp_path / "clean.jsonl"
    _write(clean, n=5, bad_every=100)
    assert runner.invoke(app, ["batch", "plan", str(clean), "--model", MODEL, "--deadline", "06:00"]).exit_code == 0


def test_a_utf16_file_is_named_as_utf16_not_csv(tmp_path):
    import pytest

    from tokenomy.batch.jsonl_shape import check_jsonl_shape
    from tokenomy.errors import UsageError

    lines = '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n'
    for encoding, width in (("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")):
        path = tmp_path / f"{encoding}.jsonl"
        path.write_bytes(lines.encode(encoding))  # with a BOM ("utf-16", "utf-32") and without
        with pytest.raises(UsageError, match=f"the file is {width}; save it as UTF-8"):  # was "this is CSV"
            check_jsonl_shape(path)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(lines)
    check_jsonl_shape(plain)  # UTF-8 passes


def _openai_lines(path, records=20, chars=400, max_tokens=100):
    with open(path, "w") as fh:
        for i in range(records):
            body = {"model": "m", "messages": [{"role": "user", "content": "x" * chars}], "max_tokens": max_tokens}
            fh.write(
                json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
            )


def test_plan_knows_the_gemini_batch_api_and_never_prints_none_hours(tmp_path):
    """A Gemini model has batch prices and a managed batch service (results within 24 h): the planner said "no managed
    batch service for this provider" and "the window is shorter than batch's None h completion"."""
    from datetime import UTC, datetime, time
    from decimal import Decimal

    from tokenomy.batch.plan import plan_deadline
    from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog

    src = tmp_path / "gemini.jsonl"
    _openai_lines(src)  # 20 records x (400 chars / 4 = 100 input tokens, 100 output tokens at max_tokens)
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    short = plan_deadline(src, "gemini-2.5-flash", time(2, 0), start=start)
    # gemini-2.5-flash: $0.30 / $2.50 per 1M on demand, $0.15 / $1.25 in batch
    assert short.on_demand_usd == Decimal(2000) * Decimal("0.30") / 10**6 + Decimal(2000) * Decimal("2.50") / 10**6
    assert short.batch_usd == short.on_demand_usd / 2 == Decimal("0.0028")
    assert short.batch_completion_hours == 24 and "Gemini Batch API" in short.batch_risk
    assert short.recommendation == "on_demand" and "batch's 24 h completion" in short.reason
    day = plan_deadline(src, "gemini-2.5-flash", time(0, 0), start=start)
    assert day.window_hours == 24 and day.recommendation == "batch" and "saves $0.002800" in day.reason
    # A provider the planner knows no completion time for: said so in words, never "None h".
    prices = tmp_path / "acme.yaml"
    prices.write_text(
        'provider: acme\nsource: https://example.com/acme\nas_of: "2026-11-01"\nmodels:\n  acme-1:\n'
        '    regions:\n      global: {input: "1", output: "2", batch_input: "0.5", batch_output: "1"}\n'
    )
    set_default_catalog(PriceCatalog.builtin().with_overrides(prices))
    try:
        quick = plan_deadline(src, "acme-1", time(2, 0), start=start, tpm_quota=100_000)
        slow = plan_deadline(src, "acme-1", time(2, 0), start=start)
    finally:
        set_default_catalog(None)
    assert quick.recommendation == "on_demand" and slow.recommendation == "on_demand"
    for plan in (quick, slow):
        assert plan.batch_completion_hours is None and "None" not in plan.reason
    assert "completion time is not stated" in quick.reason and "no stated batch completion time" in slow.reason


def test_batch_plan_never_recommends_a_batch_job_under_the_providers_minimum(tmp_path):
    # 8 records on Bedrock, whose jobs take 100 at least: `batch plan` recommended batch (a 24 h window, or a quota
    # on demand could not meet) and `batch submit` then refused the job.
    from datetime import UTC, datetime, time

    from tokenomy.batch.plan import plan_deadline

    src = tmp_path / "few.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "prompt": "Say hi.", "max_tokens": 8}) + "\n" for i in range(8)))
    start = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    for plan in (
        plan_deadline(src, haiku, time(0, 0), start=start),
        plan_deadline(src, haiku, time(1, 0), start=start, tpm_quota=1),
    ):
        assert plan.recommendation == "on_demand", plan.reason
        assert "8 records is below aws.bedrock's minimum of 100 per batch job" in plan.reason
    many = tmp_path / "many.jsonl"
    many.write_text(
        src.read_text() * 1
        + "".join(json.dumps({"id": f"s{i}", "prompt": "Say hi.", "max_tokens": 8}) + "\n" for i in range(92))
    )
    assert plan_deadline(many, haiku, time(0, 0), start=start).recommendation == "batch"


def test_a_split_never_leaves_a_job_under_the_providers_minimum(tmp_path):
    from tokenomy.batch.backends import SubmitOptions
    from tokenomy.batch.jobs import create_job, open_tables
    from tokenomy.pricing.catalog import PriceCatalog, set_default_catalog

    # Bedrock's quotas scaled down 100x on records per job (50,000 -> 500), its 100-record minimum kept.
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "provider: aws.bedrock\nsource: test\nas_of: '2026-11-30'\nbatch_quotas:\n"
        "  min_records_per_job: 100\n  max_records_per_job: 500\n  max_records_per_file: 500\n"
        "models: {}\n"
    )
    path = tmp_path / "in.jsonl"
    _write(path, n=1050, bad_every=10**6)
    set_default_catalog(PriceCatalog.builtin().with_overrides(prices))
    try:
        tables = open_tables(str(tmp_path / "ledger.duckdb"))
        options = SubmitOptions(role_arn="arn:aws:iam::1:role/R", s3_uri="s3://b/p")
        job = create_job(tables, path, "anthropic.claude-3-haiku-20240307-v1:0", "bedrock", options)
    finally:
        set_default_catalog(None)
    parts = tables.parts(job.job_id)
    # Before: 500 + 500 + 50, and Bedrock rejects a 50-record job (the whole file passed the minimum check).
    assert [len(p["record_ids"]) for p in parts] == [500, 275, 275]
    assert [rid for p in parts for rid in p["record_ids"]] == [f"r{i}" for i in range(1, 1051)]


def test_lines_that_name_another_model_are_noted(tmp_path):
    # An OpenAI batch line's body.model was replaced by --model on submit and priced as --model by validate, with no
    # word: a gpt-4o line in a file validated for gpt-4o-mini was estimated, and sent, as gpt-4o-mini.
    path = tmp_path / "openai.jsonl"
    lines = [("c1", "gpt-4o-mini-2024-07-18"), ("c2", "gpt-4o-mini"), ("c3", "gpt-4o"), ("c4", "gpt-4o")]
    path.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": cid,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                }
            )
            + "\n"
            for cid, model in lines
        )
    )
    report = validate_file(path, "gpt-4o-mini")
    assert len(report.records) == 4
    assert "body.model names another model on 2 line(s) (gpt-4o): they are priced and sent as gpt-4o-mini" in "\n".join(
        report.notes
    ), report.notes


def test_validate_and_plan_json_print_the_costs_their_tables_print(tmp_path):
    # The JSON wrote the estimate's full precision ("0.00122865") where the table printed $0.001229.
    from typer.testing import CliRunner

    from tokenomy.cli import app

    path = tmp_path / "b.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "prompt": f"Summarise item {i} in one line please.", "max_tokens": 100}) + "\n"
            for i in range(20)
        )
    )
    runner = CliRunner()
    for command in (["validate"], ["plan", "--deadline", "23:59"]):
        args = ["batch", *command, str(path), "--model", "gpt-4o-mini"]
        data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
        table = runner.invoke(app, args, env={"COLUMNS": "200"}).output
        for key in ("on_demand_usd", "batch_usd"):
            assert len(data[key].split(".")[1]) == 6 and f"${data[key]}" in table, (command, key, data[key], table)


def test_plan_checks_lines_for_the_backend_it_is_given_as_validate_does(tmp_path):
    # Validated for no backend, an OpenAI line a rebuild would send without its top_p was planned (and priced) as a
    # good record, and the plan's own note said "pass --backend", which plan did not take.
    from typer.testing import CliRunner

    from tokenomy.cli import app

    src = tmp_path / "openai.jsonl"
    _openai_lines(src, records=4)
    lines = src.read_text().splitlines()
    top_p = json.loads(lines[2])
    top_p["body"]["top_p"] = 0.1
    lines[2] = json.dumps(top_p)
    src.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    base = ["batch", "plan", str(src), "--model", "gpt-4o-mini", "--deadline", "06:00"]
    unchecked = json.loads(runner.invoke(app, [*base, "--json"]).stdout)
    assert unchecked["records"] == 4 and any("pass --backend" in n for n in unchecked["notes"])
    checked = runner.invoke(app, [*base, "--backend", "local", "--json"])
    body = json.loads(checked.stdout)
    assert checked.exit_code == 1 and body["records"] == 3 and body["input_tokens"] == 3 * 100
    assert [(b["line"], b["field"]) for b in body["bad_lines"]] == [(3, "body.top_p")]
    validated = runner.invoke(
        app, ["batch", "validate", str(src), "--model", "gpt-4o-mini", "--backend", "local", "--json"]
    )
    assert json.loads(validated.stdout)["bad_lines"] == body["bad_lines"]
    assert any(f"tokenomy batch validate {src} --model gpt-4o-mini --backend local" in n for n in body["notes"])
    assert not any("pass --backend" in n for n in body["notes"])
    assert runner.invoke(app, [*base, "--backend", "openai", "--json"]).exit_code == 0  # sent as written
    wrong = runner.invoke(app, [*base, "--backend", "openia"])  # the CLI prints it as an error, exit 2
    assert "--backend 'openia' is not one of local, bedrock" in str(wrong.exception), wrong.output


def test_a_value_holding_a_lone_surrogate_is_named_escaped_not_a_traceback(tmp_path):
    # JSON may escape a lone surrogate ("\ud800"); quoted raw in the bad line's reason, it could not be printed
    # (UnicodeEncodeError out of the table). It is quoted escaped, as JSON writes it.
    path = tmp_path / "surrogate.jsonl"
    path.write_text('{"id": "a", "prompt": "hi", "temperature": "\\ud800"}\n{"id": "b", "prompt": "Say hi."}\n')
    out = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(path), "--model", MODEL],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "temperature" in out.stdout and "\\ud800" in out.stdout, out.stdout


def _lines(path, *objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def _openai_line(cid, **body):
    return {
        "custom_id": cid,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body},
    }


def test_sampling_options_out_of_the_providers_range_are_bad_lines(tmp_path):
    # A temperature of 2.5 passed validation and submit, and each record was refused by the provider hours later.
    path = _lines(
        tmp_path / "openai.jsonl",
        _openai_line("a", temperature=2.5),
        _openai_line("b", top_p=1.5),
        _openai_line("c", temperature=1.5, top_p=1),
        _openai_line("d", frequency_penalty=-3),
    )
    report = validate_file(path, "gpt-4o-mini", backend="openai")
    assert [(b.line, b.field) for b in report.bad] == [
        (1, "body.temperature"),
        (2, "body.top_p"),
        (4, "body.frequency_penalty"),
    ]
    assert "0 to 2" in report.bad[0].reason and "0 to 1" in report.bad[1].reason and "-2 to 2" in report.bad[2].reason
    assert [r.id for r in report.records] == ["c"]
    # Anthropic takes 0 to 1, the same record's 1.5 is out of its range (the local runner sends it to Claude)
    plain = _lines(
        tmp_path / "plain.jsonl",
        {"id": "a", "prompt": "hi", "temperature": 1.5},
        {"id": "b", "prompt": "hi", "temperature": 1},
    )
    [bad] = validate_file(plain, "claude-sonnet-4-5-20250929").bad
    assert (bad.line, bad.field) == (1, "temperature") and "0 to 1" in bad.reason
    assert validate_file(plain, "gemini-2.0-flash", backend="gemini").bad == []  # Gemini's range is 0 to 2
    bedrock = _lines(
        tmp_path / "bedrock.jsonl",
        {
            "recordId": "a",
            "modelInput": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 5,
                "temperature": 1.2,
                "messages": [{"role": "user", "content": "hi"}],
            },
        },
        {
            "recordId": "b",
            "modelInput": {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "inferenceConfig": {"maxTokens": 5, "topP": 2},
            },
        },
    )
    report = validate_file(bedrock, MODEL, backend="bedrock")
    assert [(b.line, b.field) for b in report.bad] == [
        (1, "modelInput.temperature"),
        (2, "modelInput.inferenceConfig.topP"),
    ]


def test_a_claude_body_without_max_tokens_is_refused_before_the_job(tmp_path):
    # A Bedrock line in Claude's body goes to a Claude job as written, and Bedrock's Claude body requires max_tokens:
    # without it the record failed after the job ran (hours later). It is a bad line naming the field; Converse and
    # Nova bodies, whose caps are optional, pass without one.
    path = _lines(
        tmp_path / "bedrock.jsonl",
        {
            "recordId": "a",
            "modelInput": {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "hi"}]},
        },
        {"recordId": "b", "modelInput": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}},
    )
    [bad] = validate_file(path, MODEL, backend="bedrock").bad
    assert (bad.line, bad.field) == (1, "modelInput.max_tokens")
    assert "requires max_tokens" in bad.reason and "add it" in bad.reason
    [plain] = validate_file(path, MODEL).bad  # with no backend named yet, too: Bedrock is the line's own
    assert plain.field == "modelInput.max_tokens"


def test_cli_validate_names_the_line_the_field_and_the_range(tmp_path):
    path = _lines(tmp_path / "in.jsonl", {"id": "a", "prompt": "hi", "temperature": 3})
    out = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(path), "--model", "gpt-4o-mini", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    [bad] = json.loads(out.stdout)["bad_lines"]
    assert bad["line"] == 1 and bad["field"] == "temperature" and "0 to 2" in bad["reason"], bad


def test_validate_and_plan_say_where_their_prices_come_from_and_when(tmp_path):
    # Both quoted an on-demand and a batch cost with no word of the prices behind them: a cost from a price a year
    # old read as current. They name the entry's source and as_of, as `tokenomy cost` and `tokenomy prices` do.
    from typer.testing import CliRunner

    from tokenomy.cli import app
    from tokenomy.pricing.catalog import default_catalog

    entry = default_catalog().lookup("gpt-4o-mini")
    path = tmp_path / "b.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": f"Item {i}.", "max_tokens": 10}) + "\n" for i in range(5))
    )
    runner = CliRunner()
    for command in (["validate"], ["plan", "--deadline", "23:59"]):
        args = ["batch", *command, str(path), "--model", "gpt-4o-mini"]
        data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
        assert (data["price_source"], data["price_as_of"]) == (entry.source, entry.as_of), command
        assert data["priced_by"] == "tokenomy-catalog"
        shown = runner.invoke(app, args, env={"COLUMNS": "400"}).output
        assert f"prices: tokenomy-catalog, {entry.source} (as of {entry.as_of})" in shown, (command, shown)


def test_submit_of_a_file_with_no_good_line_names_each_bad_line_and_stores_nothing(tmp_path):
    # `batch submit` of a file whose every line is bad said only "no valid records (3 bad lines); run `tokenomy batch
    # validate`": which line, and what to fix, took a second command. The error now names them, as validate would.
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a", "prompt": \n'
        + json.dumps({"id": "b", "prompt": "hi", "temperature": 3})
        + "\n"
        + json.dumps({"id": "c", "prompt": "hi", "max_token": 5})
        + "\n"
        + json.dumps({"id": "d", "prompt": " "})
        + "\n"
    )
    ledger = tmp_path / "ledger.duckdb"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "batch",
            "submit",
            str(path),
            "--model",
            "gpt-4o-mini",
            "--ledger",
            str(ledger),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    error = " ".join(out.stderr.split())
    assert "line 1: invalid JSON" in error and "line 2: temperature: must be a number from 0 to 2" in error, error
    assert "line 3: max_token: not a key of a plain record" in error and "and 1 more" in error, error
    assert f"tokenomy batch validate {path} --model gpt-4o-mini" in error and not ledger.exists()


@pytest.mark.parametrize(
    ("backend", "model", "quota"),
    [
        ("gemini", "gemini-2.5-flash", "max_bytes_per_job"),  # the inline requests of one batch: 20 MB in all
        ("openai", "gpt-4o-mini", "max_bytes_per_file"),  # one batch's input file: 200 MB
        # A Bedrock job's input file (1 GB): the split held a job to 5 GB only, though it is sent as one file.
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "max_bytes_per_file"),
    ],
)
def test_a_file_is_split_by_the_bytes_each_backend_sends_not_by_its_input_lines(
    backend, model, quota, tmp_path, monkeypatch
):
    # The split measured each record by its input line ({"id", "prompt"}: ~60 bytes), while a backend sends it in
    # its own form (a Gemini inline request, an OpenAI line with custom_id, method, url and body), half as long again
    # or more: a file of short prompts under the limit as written was one part over it as sent, which the provider
    # refuses, and resume sent the same part again, refused again. Each part now holds what fits as sent, in the one
    # file each backend sends it as.
    from tokenomy.batch.backends import SubmitOptions
    from tokenomy.batch.jobs import get_backend, prepare_job
    from tokenomy.pricing.catalog import default_catalog

    provider = default_catalog().lookup(model).provider
    monkeypatch.setitem(default_catalog().batch_quotas, provider, {"min_records_per_job": 1, quota: 2000})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"Label {i}."}) + "\n" for i in range(40)))
    assert path.stat().st_size < 2000
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = SubmitOptions(endpoint_url="http://127.0.0.1:9", role_arn="arn:aws:iam::1:role/r", s3_uri="s3://b/p")
    _, parts, _ = prepare_job(path, model, backend, options)
    assert len(parts) > 1, [len(part) for part in parts]
    sender = get_backend(backend, options)
    sent = [sum(len(sender.input_line(model, rec).encode()) + 1 for rec in part) for part in parts]
    assert max(sent) <= 2000, sent
    assert [rec.id for part in parts for rec in part] == [f"r{i}" for i in range(40)]


def test_an_openai_line_that_asks_to_stream_is_named_before_the_batch_is_made(tmp_path):
    # `"stream": true` in an OpenAI line was sent as written. A batch answers each request whole, and OpenAI's batch
    # validation refuses a line that streams, failing the whole batch (every record of its part) after the upload,
    # and resume sent the same part again. The line is now named, with the fix, before anything is sent.
    path = _lines(
        tmp_path / "in.jsonl", _openai_line("a", stream=True), _openai_line("b", stream=False), _openai_line("c")
    )
    for backend in ("openai", "azure", None):
        report = validate_file(path, "gpt-4o-mini", backend=backend)
        assert [(b.line, b.field) for b in report.bad] == [(1, "body.stream")], backend
        assert "OpenAI's batch refuses a request that streams" in report.bad[0].reason
        assert [r.id for r in report.records] == ["b", "c"]


def test_validate_estimates_image_parts_as_the_gateway_reserves_them(tmp_path):
    # `batch validate` estimated a record's text only: an image (hundreds to thousands of tokens billed) counted 0, so
    # a file of screenshots was quoted at a fraction of its cost. Each image part, in any form a line takes, now
    # counts the gateway's figure (IMAGE_TOKENS, what a budget reserves for it).
    from tokenomy.caching.placement import IMAGE_TOKENS, estimate_input_tokens
    from tokenomy.providers.anthropic_inbound import request_from_anthropic

    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": png}, {"type": "text", "text": "What is this?"}]}
        ],
    }
    lines = {
        "openai": {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "max_tokens": 50,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                            {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
                        ],
                    }
                ],
            },
        },
        "bedrock": {"recordId": "b", "modelInput": claude},
    }
    models = {"openai": "gpt-4o-mini", "bedrock": "anthropic.claude-3-haiku-20240307-v1:0"}

    def estimated(line: dict, model: str) -> int:
        path = tmp_path / "in.jsonl"
        path.write_text(json.dumps(line) + "\n")
        out = subprocess.run(
            [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(path), "--model", model, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)["input_tokens"]

    text_only = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "What is this?"}]},
    }
    assert estimated(lines["openai"], models["openai"]) == estimated(text_only, models["openai"]) + 2 * IMAGE_TOKENS
    # The same request through the gateway is reserved at the same figure for its image.
    gateway = estimate_input_tokens(request_from_anthropic({**claude, "model": "claude-3-haiku"}))
    assert estimated(lines["bedrock"], models["bedrock"]) == gateway > IMAGE_TOKENS


def test_validate_estimates_documents_as_the_gateway_reserves_them_and_names_audio_it_cannot(tmp_path):
    # `batch validate` counted a PDF (or any document) at 0 tokens, and audio or video too, without a word: a file of
    # contracts was quoted at the price of its questions. A document now counts as a budget reserves it (a PDF by its
    # pages, placement.document_tokens), and a record sending audio or video is named as not counted.
    import base64

    from tokenomy.caching.placement import DOCUMENT_TOKENS, estimate_input_tokens
    from tokenomy.providers.anthropic_inbound import request_from_anthropic

    pdf = (
        b"%PDF-1.4\n1 0 obj <</Type /Pages /Count 3>>\n"
        + b"".join(b"%d 0 obj <</Type /Page>>\n" % n for n in (2, 3, 4))
        + b"%%EOF\n"
    )
    data = base64.b64encode(pdf).decode()
    ask = {"type": "text", "text": "Summarise the contract."}
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}},
                    ask,
                ],
            }
        ],
    }
    pdf_block = {"document": {"format": "pdf", "name": "contract", "source": {"bytes": data}}}
    nova = {
        "schemaVersion": "messages-v1",
        "inferenceConfig": {"max_new_tokens": 50},
        "messages": [{"role": "user", "content": [pdf_block, {"text": ask["text"]}]}],
    }

    def openai(*parts: dict) -> dict:
        return {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": [ask, *parts]}],
            },
        }

    def validated(line: dict, model: str):
        path = tmp_path / "in.jsonl"
        path.write_text(json.dumps(line) + "\n")
        report = validate_file(path, model)
        assert not report.bad and len(report.records) == 1, report.bad
        return report

    haiku, nova_lite = "anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0"
    file_part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{data}", "filename": "c.pdf"}}
    text_only = validated(openai(), "gpt-4o-mini").input_tokens
    assert validated(openai(file_part), "gpt-4o-mini").input_tokens == text_only + 3 * DOCUMENT_TOKENS
    by_id = {"type": "file", "file": {"file_id": "file-abc"}}  # its size is not in the line: a page, as the gateway
    assert validated(openai(by_id), "gpt-4o-mini").input_tokens == text_only + DOCUMENT_TOKENS
    assert validated({"recordId": "n", "modelInput": nova}, nova_lite).input_tokens == text_only + 3 * DOCUMENT_TOKENS
    # The same request through the gateway is reserved at the same figure for its PDF.
    gateway = estimate_input_tokens(request_from_anthropic({**claude, "model": "claude-3-haiku"}))
    assert validated({"recordId": "b", "modelInput": claude}, haiku).input_tokens == gateway > 3 * DOCUMENT_TOKENS
    assert not any("audio or video" in note for note in validated(openai(file_part), "gpt-4o-mini").notes)

    # Audio and video are billed by their length, which the line does not give: the record is named, not counted.
    audio = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(b"RIFF" + bytes(64)).decode(), "format": "wav"},
    }
    video = {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://bucket/clip.mp4"}}}}
    nova_video = {**nova, "messages": [{"role": "user", "content": [video, {"text": ask["text"]}]}]}
    path = tmp_path / "media.jsonl"
    path.write_text(json.dumps(openai(audio)) + "\n" + json.dumps({**openai(), "custom_id": "b"}) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "tokenomy.cli", "batch", "validate", str(path), "--model", "gpt-4o-mini"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning: audio or video is not counted in the input tokens or the cost" in out.stdout, out.stdout
    assert "1 record(s) send it, a (line 1);" in out.stdout, out.stdout
    notes = validated({"recordId": "v", "modelInput": nova_video}, nova_lite).notes
    assert any("audio or video is not counted" in note and "v (line 1)" in note for note in notes), notes
