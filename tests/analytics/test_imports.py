"""Imports build real files of each format and check the ledger rows: OTLP JSON GenAI spans (old and new
attribute names), Bedrock CUR 2.0 / FOCUS line items (CSV and Parquet), and the llm CLI's logs.db created
with llm's own migrations. Bad records are named by file and line/row; good ones still land."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
from typer.testing import CliRunner

from tokenomy.analytics.imports import import_cur, parse_bedrock_usage_type
from tokenomy.chat_response import Usage
from tokenomy.cli import app
from tokenomy.errors import ConfigError
from tokenomy.ledger.store import open_store
from tokenomy.pricing.cost import compute_cost

T0 = 1_763_900_000_000_000_000  # ns since the epoch


def _attrs(**values) -> list[dict]:
    out = []
    for key, value in values.items():
        key = key.replace("__", ".")
        out.append(
            {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}
        )
    return out


def _span(n: int, attributes: list[dict], status: int = 1) -> dict:
    return {
        "traceId": "ab" * 16,
        "spanId": f"{n:016x}",
        "name": f"span {n}",
        "kind": 3,
        "startTimeUnixNano": str(T0 + n * 10**9),
        "endTimeUnixNano": str(T0 + n * 10**9 + 250_000_000),
        "attributes": attributes,
        "status": {"code": status},
    }


def _otlp() -> dict:
    spans = [
        _span(
            0,
            _attrs(
                **{
                    "gen_ai.provider.name": "openai",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                }
            ),
        ),
        _span(
            1,
            _attrs(
                **{
                    "gen_ai.system": "aws.bedrock",
                    "gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0",
                    "gen_ai.usage.prompt_tokens": 50,
                    "gen_ai.usage.completion_tokens": 20,
                }
            ),
        ),
        _span(
            2,
            _attrs(
                **{
                    "gen_ai.system": "anthropic",
                    "gen_ai.request.model": "claude-3-5-sonnet-20241022",
                    "gen_ai.usage.prompt_tokens": 40,
                    "gen_ai.usage.completion_tokens": 5,
                    "gen_ai.usage.cache_read_input_tokens": 900,
                    "gen_ai.usage.cache_creation_input_tokens": 100,
                    "error.type": "timeout",
                }
            ),
            status=2,
        ),
        _span(3, _attrs(**{"http.request.method": "POST", "url.full": "https://example.invalid/v1"})),
        _span(4, _attrs(**{"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 5})),  # no model
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attrs(**{"service.name": "checkout"})},
                "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "spans": spans}],
            }
        ]
    }


def test_import_otel(ledger_path, tmp_path) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(_otlp()))
    runner = CliRunner()
    result = runner.invoke(app, ["import", "otel", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 1  # one bad span: reported, the others imported
    summary = json.loads(result.stdout)
    assert (summary["read"], summary["added"], summary["skipped_not_llm_usage"]) == (3, 3, 1)
    assert summary["problems"] == [
        f"{path}: resourceSpans[0].scopeSpans[0].spans[4] (span 4): gen_ai span without "
        "gen_ai.response.model or gen_ai.request.model"
    ]
    events = {e.model: e for e in open_store(ledger_path).events()}
    new = events["gpt-4o-mini"]  # new names: cached tokens are inside input_tokens
    assert (new.provider, new.input_tokens, new.cache_read_tokens, new.output_tokens) == ("openai", 200, 1000, 300)
    assert new.ts == datetime.fromtimestamp(T0 / 1e9, tz=UTC) and new.latency_ms == 250.0
    assert new.tags == {"source": "otel", "service": "checkout"} and new.task == "chat"
    assert new.cost_usd == compute_cost(Usage(200, 300, 1000, 0), "gpt-4o-mini").total_usd > 0
    old = events["anthropic.claude-3-haiku-20240307-v1:0"]
    assert (old.provider, old.input_tokens, old.output_tokens) == ("bedrock", 50, 20) and old.cost_usd > 0
    cached = events["claude-3-5-sonnet-20241022"]  # old underscore names: cache not inside prompt_tokens
    assert (cached.input_tokens, cached.cache_read_tokens, cached.cache_write_tokens) == (40, 900, 100)
    assert (cached.outcome, cached.error_type) == ("server_error", "timeout")
    again = json.loads(runner.invoke(app, ["import", "otel", str(path), "--json", "--ledger", str(ledger_path)]).stdout)
    assert (again["read"], again["added"], again["already_in_ledger"]) == (3, 0, 3)
    lines = tmp_path / "traces.jsonl"  # the collector's file exporter: one document per line
    lines.write_text(json.dumps(_otlp()) + "\n{not json\n")
    summary = json.loads(
        runner.invoke(app, ["import", "otel", str(lines), "--json", "--ledger", str(ledger_path)]).stdout
    )
    assert summary["read"] == 3 and any(p.startswith(f"{lines}:2: not JSON") for p in summary["problems"])


CUR_HEADER = [
    "identity_line_item_id",
    "line_item_usage_start_date",
    "line_item_product_code",
    "line_item_line_item_type",
    "line_item_usage_type",
    "line_item_usage_amount",
    "pricing_unit",
    "line_item_unblended_cost",
    "product_region_code",
]
CUR_ROWS = [
    [
        "a1",
        "2026-11-20T10:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-Claude3Haiku-input-tokens",
        "1000",
        "",
        "0.00025",
        "us-east-1",
    ],
    [
        "a2",
        "2026-11-20T10:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-Claude3Haiku-output-tokens",
        "200",
        "",
        "0.00025",
        "us-east-1",
    ],
    [
        "a3",
        "2026-11-20T10:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-Claude3Haiku-cache-read-input-token-count",
        "5000",
        "",
        "0.000125",
        "us-east-1",
    ],
    [
        "a4",
        "2026-11-20T10:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-Claude3Haiku-cache-write-input-token-count",
        "300",
        "",
        "0.000094",
        "us-east-1",
    ],
    [
        "a5",
        "2026-11-20T11:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-Claude3Haiku-batch-input-tokens",
        "2",
        "1K tokens",
        "0.00025",
        "us-east-1",
    ],
    ["a6", "2026-11-20T11:00:00Z", "AmazonEC2", "Usage", "USE1-BoxUsage:t3.micro", "1", "Hrs", "0.0104", "us-east-1"],
    [
        "a7",
        "2026-11-20T11:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-ProvisionedThroughput-ModelUnits",
        "1",
        "Hrs",
        "20",
        "us-east-1",
    ],
    [
        "a8",
        "2026-11-20T12:00:00Z",
        "AmazonBedrock",
        "Usage",
        "USE1-NovaMicro-input-tokens",
        "10",
        "",
        "lots",
        "us-east-1",
    ],
]


def test_import_otel_of_a_file_starting_with_a_byte_order_mark(ledger_path, tmp_path) -> None:
    # Windows editors save UTF-8 with a byte-order mark: `route train` read such a file, `import otel` refused it as
    # not JSON ("Unexpected UTF-8 BOM") on its one document, or on the first of its lines.
    document, lines = tmp_path / "traces.json", tmp_path / "traces.jsonl"
    document.write_bytes(b"\xef\xbb\xbf" + json.dumps(_otlp()).encode())
    lines.write_bytes(b"\xef\xbb\xbf" + (json.dumps(_otlp()) + "\n").encode())
    for path, ledger in ((document, tmp_path / "a.duckdb"), (lines, tmp_path / "b.duckdb")):
        result = CliRunner().invoke(app, ["import", "otel", str(path), "--json", "--ledger", str(ledger)])
        summary = json.loads(result.stdout)
        assert (summary["read"], summary["added"]) == (3, 3), summary
        assert not any("JSON" in problem for problem in summary["problems"]), summary


def test_import_otel_bad_counts_and_unpriced_models(ledger_path, tmp_path) -> None:
    import subprocess
    import sys

    spans = [
        _span(
            0,
            _attrs(
                **{
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "acme-finetune",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 10,
                }
            ),
        ),
        # Used to be reported as "invalid literal for int() with base 10" / "cache tokens exceed input".
        _span(
            1,
            _attrs(
                **{
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": "lots",
                }
            ),
        ),
        _span(
            2,
            _attrs(
                **{"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": -5}
            ),
        ),
    ]
    path = tmp_path / "traces.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        'provider: openai\nsource: https://example.com/rates\nas_of: "2026-11-01"\nmodels:\n'
        '  acme-finetune:\n    regions:\n      global: {input: "1.00", output: "2.00"}\n'
    )
    # The unpriced-model hint named a --prices option `import` did not have; in a subprocess, as the price
    # file replaces the process-wide catalog.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "import",
            "otel",
            str(path),
            "--json",
            "--ledger",
            str(ledger_path),
            "--prices",
            str(prices),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    summary = json.loads(result.stdout)
    assert summary["problems"] == [
        f"{path}: resourceSpans[0].scopeSpans[0].spans[1] (span 1): gen_ai.usage.input_tokens='lots' is not a token "
        "count (a whole number >= 0)",
        f"{path}: resourceSpans[0].scopeSpans[0].spans[2] (span 2): gen_ai.usage.input_tokens=-5 is not a token count "
        "(a whole number >= 0)",
    ]
    assert summary["unpriced_models"] == []
    [event] = open_store(ledger_path).events()
    assert event.cost_usd == Decimal(100) * 1 / 10**6 + Decimal(10) * 2 / 10**6


def test_import_cur_csv_and_parquet(ledger_path, tmp_path) -> None:
    path = tmp_path / "cur.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CUR_HEADER)
        writer.writerows(CUR_ROWS)
    result = CliRunner().invoke(app, ["import", "cur", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["problems"] == [
        f"{path}:9: USE1-NovaMicro-input-tokens: cannot read start='2026-11-20T12:00:00Z', "
        "amount='10', cost='lots' (need an ISO time and numbers)"
    ]
    assert (summary["added"], summary["skipped_not_llm_usage"]) == (2, 2)
    events = open_store(ledger_path).events()
    hour, batch = events
    assert (hour.provider, hour.model, hour.region, hour.mode) == ("bedrock", "Claude3Haiku", "us-east-1", "on_demand")
    assert (hour.input_tokens, hour.output_tokens, hour.cache_read_tokens, hour.cache_write_tokens) == (
        1000,
        200,
        5000,
        300,
    )
    assert hour.cost_usd == Decimal("0.00025") + Decimal("0.00025") + Decimal("0.000125") + Decimal("0.000094")
    assert (hour.input_cost_usd, hour.cache_write_cost_usd) == (Decimal("0.00025"), Decimal("0.000094"))
    assert (batch.mode, batch.input_tokens, batch.cost_usd) == ("batch", 2000, Decimal("0.00025"))  # 2 x 1K tokens
    parquet = tmp_path / "cur.parquet"
    typed = pd.DataFrame(CUR_ROWS[:5], columns=CUR_HEADER)  # as AWS writes Parquet: typed columns, nulls
    typed["line_item_usage_start_date"] = pd.to_datetime(typed["line_item_usage_start_date"], utc=True)
    for column in ("line_item_usage_amount", "line_item_unblended_cost"):
        typed[column] = typed[column].astype(float)
    typed["pricing_unit"] = typed["pricing_unit"].replace("", None)
    typed.to_parquet(parquet)
    again = import_cur(parquet)
    assert [e.event_id for e in again.events] == [e.event_id for e in events] and not again.problems
    assert [(e.input_tokens, e.cache_read_tokens, e.mode) for e in again.events] == [
        (e.input_tokens, e.cache_read_tokens, e.mode) for e in events
    ]


def test_import_cur_rejects_a_file_without_cur_columns(ledger_path, tmp_path) -> None:
    # A file pandas reads as a header with no rows (here a stray JSON file) used to "import" 0 records quietly.
    wrong = tmp_path / "notes.json"
    wrong.write_text('{"not": "a cost report"}\n')
    result = CliRunner().invoke(app, ["import", "cur", str(wrong), "--ledger", str(ledger_path)])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
    assert "line_item_usage_type" in str(result.exception) and str(wrong) in str(result.exception)
    assert not ledger_path.exists()  # the file is read first: a wrong file leaves no empty ledger behind
    header_only = tmp_path / "empty-cur.csv"
    header_only.write_text(",".join(CUR_HEADER) + "\n")  # a real CUR file for a period without Bedrock usage
    assert import_cur(header_only).events == []
    folder = CliRunner().invoke(app, ["import", "cur", str(header_only), "--ledger", str(tmp_path)])  # a traceback
    assert isinstance(folder.exception, ConfigError) and str(folder.exception).startswith(f"ledger {tmp_path}")


def test_import_focus_export(tmp_path) -> None:
    path = tmp_path / "focus.csv"
    pd.DataFrame(
        [
            {
                "ChargePeriodStart": "2026-11-20T00:00:00Z",
                "ServiceName": "Amazon Bedrock",
                "ChargeCategory": "Usage",
                "x_UsageType": "EUC1-NovaLite-output-tokens",
                "ConsumedQuantity": "4000",
                "ConsumedUnit": "Tokens",
                "BilledCost": "0.00096",
                "RegionId": "eu-central-1",
            },
            {
                "ChargePeriodStart": "2026-11-20T00:00:00Z",
                "ServiceName": "Amazon Bedrock",
                "ChargeCategory": "Tax",
                "x_UsageType": "EUC1-NovaLite-output-tokens",
                "ConsumedQuantity": "0",
                "ConsumedUnit": "Tokens",
                "BilledCost": "0.0002",
                "RegionId": "eu-central-1",
            },
        ]
    ).to_csv(path, index=False)
    result = import_cur(path)
    [event] = result.events
    assert (event.model, event.region, event.output_tokens, event.cost_usd) == (
        "NovaLite",
        "eu-central-1",
        4000,
        Decimal("0.00096"),
    )
    assert parse_bedrock_usage_type("USW2-Llama3-70B-mantle-input-tokens-standard") == (
        "USW2",
        "Llama3-70B",
        "input_tokens",
        "on_demand",
    )


def test_import_llm_log(ledger_path, tmp_path) -> None:
    import sqlite_utils
    from llm.migrations import migrate

    path = tmp_path / "logs.db"
    db = sqlite_utils.Database(path)
    migrate(db)  # the llm tool's own schema: old `responses` and current `turns` tables
    db["turns"].insert_all(
        [
            {
                "id": "t1",
                "model": "gpt-4o-mini",
                "input_tokens": 1500,
                "output_tokens": 40,
                "duration_ms": 812,
                "token_details": json.dumps({"prompt_tokens_details": {"cached_tokens": 1024}}),
                "datetime_utc": "2026-11-20T10:00:00.123456+00:00",
            },
            {
                "id": "t2",
                "model": "local",
                "input_tokens": None,
                "output_tokens": None,
                "duration_ms": 8000,
                "token_details": None,
                "datetime_utc": "2026-11-20T11:00:00+00:00",
            },
        ]
    )
    db["responses"].insert_all(
        [
            {
                "id": "r1",
                "model": "claude-3.5-sonnet",
                "input_tokens": 30,
                "output_tokens": 12,
                "duration_ms": 1500,
                "token_details": json.dumps({"cache_read_input_tokens": 2000, "cache_creation_input_tokens": 100}),
                "datetime_utc": "2024-05-01T09:30:00.000001",
            },
            {
                "id": "t1",
                "model": "gpt-4o-mini",
                "input_tokens": 1500,
                "output_tokens": 40,
                "duration_ms": 812,
                "datetime_utc": "2026-11-20T10:00:00.123456",
            },  # the same response logged in both tables
            {
                "id": "r3",
                "model": "gpt-4o",
                "input_tokens": 1,
                "output_tokens": 1,
                "duration_ms": 1,
                "datetime_utc": "yesterday",
            },
        ]
    )
    db.close()
    result = CliRunner().invoke(app, ["import", "llm-log", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert len(summary["problems"]) == 1 and summary["problems"][0].startswith(f"{path}: responses id=r3: ")
    events = {e.model: e for e in open_store(ledger_path).events()}
    assert set(events) == {"gpt-4o-mini", "local", "claude-3.5-sonnet"}
    gpt = events["gpt-4o-mini"]
    assert (gpt.provider, gpt.input_tokens, gpt.cache_read_tokens, gpt.output_tokens, gpt.latency_ms) == (
        "openai",
        1500 - 1024,
        1024,
        40,
        812.0,
    )
    assert gpt.ts == datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    assert gpt.cost_usd == compute_cost(Usage(476, 40, 1024, 0), "gpt-4o-mini").total_usd
    claude = events["claude-3.5-sonnet"]
    assert (claude.provider, claude.input_tokens, claude.cache_read_tokens, claude.cache_write_tokens) == (
        "anthropic",
        30,
        2000,
        100,
    )
    assert claude.ts == datetime(2024, 5, 1, 9, 30, 0, 1, tzinfo=UTC)  # naive = UTC
    assert events["local"].input_tokens == 0 and events["local"].latency_ms == 8000.0


def test_an_llm_log_prompt_with_audio_is_priced_at_the_audio_rates(ledger_path, tmp_path) -> None:
    """llm's OpenAI plugin logs the answer's usage details (zeros left out, `simplify_usage_dict`): the prompt's and
    the answer's audio_tokens are read into the row's audio counts, so gpt-audio's audio is priced at $32 / $64 per 1M,
    not as text at $2.50 / $10; a count over its whole is a problem naming the row."""
    import sqlite_utils
    from llm.migrations import migrate
    from llm.utils import simplify_usage_dict

    path = tmp_path / "logs.db"
    db = sqlite_utils.Database(path)
    migrate(db)

    def turn(turn_id: str, prompt_audio: int) -> dict:
        details = {
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": prompt_audio},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400},
        }
        return {
            "id": turn_id,
            "model": "gpt-audio",
            "input_tokens": 1_200,
            "output_tokens": 500,
            "duration_ms": 900,
            "token_details": json.dumps(simplify_usage_dict(details)),
            "datetime_utc": "2026-11-20T10:00:00",
        }

    db["turns"].insert_all([turn("t1", 1_000), turn("t2", 1_201)])
    db.close()
    result = CliRunner().invoke(app, ["import", "llm-log", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem.startswith(f"{path}: turns id=t2: token_details prompt_tokens_details.audio_tokens=1201 is more")
    [row] = open_store(ledger_path).events()
    assert (row.input_tokens, row.audio_input_tokens, row.output_tokens, row.audio_output_tokens) == (
        1_200,
        1_000,
        500,
        400,
    )
    assert row.cost_usd == Decimal("0.0591")  # (200 x $2.50 + 1,000 x $32 + 100 x $10 + 400 x $64) / 1M


def test_an_llm_log_prompt_at_a_service_tier_is_priced_at_that_tier(ledger_path, tmp_path) -> None:
    """llm logs the tier OpenAI served (`service_tier` in response_json) and the one asked for (`-o service_tier flex`,
    in options_json; a streamed Chat Completions answer logs no served tier): every prompt was priced at the standard
    tier, an o3 flex prompt at twice what OpenAI billed."""
    import sqlite_utils
    from llm.logs import condense_payload
    from llm.migrations import migrate

    path = tmp_path / "logs.db"
    db = sqlite_utils.Database(path)
    migrate(db)

    def turn(turn_id: str, asked: str | None, served: str | None) -> dict:
        answer = {
            "id": turn_id,
            "model": "o3",
            "choices": [{"message": {"content": "ok"}}],
            **({"service_tier": served} if served else {}),
        }
        return {
            "id": turn_id,
            "model": "o3",
            "input_tokens": 1000,
            "output_tokens": 100,
            "duration_ms": 900,
            "options_json": json.dumps({"service_tier": asked} if asked else {}),
            "response_json": condense_payload(answer, [], ()),
            "datetime_utc": f"2026-11-20T10:00:0{turn_id[1]}",
        }

    db["turns"].insert_all(
        [
            turn("t1", "flex", "flex"),
            turn("t2", "priority", None),
            turn("t3", "flex", "default"),
            turn("t4", None, "default"),
            turn("t5", "fast", None),
        ]
    )
    db.close()
    result = CliRunner().invoke(app, ["import", "llm-log", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    events = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    tiers = ["flex", "priority", "standard", "standard", "priority"]  # served, else asked; "fast" is priority
    assert [e.tags.get("service_tier", "standard") for e in events] == tiers
    usage = Usage(1000, 100, 0, 0)
    assert [e.cost_usd for e in events] == [
        compute_cost(usage, "o3", service_tier=t, one_call=True, at=e.ts).total_usd
        for t, e in zip(tiers, events, strict=True)
    ]
    assert events[0].cost_usd * 2 == events[3].cost_usd  # flex is half the standard price


def test_otel_round_trip_from_tokenomy_spans(ledger_path, tmp_path) -> None:
    """Spans from Tokenomy's own instrumentation, encoded as OTLP by the SDK's encoder, import to the same usage."""
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tokenomy.analytics.imports import import_otel
    from tokenomy.chat_response import ChatResponse
    from tokenomy.messages import ChatRequest
    from tokenomy.telemetry.otel import attempt_span, record_success
    from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

    exporter, _ = in_memory_pipeline()
    exporter.clear()
    request = ChatRequest.simple("Classify this ticket", model="gpt-4o-mini", max_tokens=5)
    usage = Usage(input_tokens=200, output_tokens=30, cache_read_tokens=1000, cache_write_tokens=0)
    with attempt_span(request, "openai", 1) as span:
        record_success(
            span,
            request,
            ChatResponse.of_text("billing", model="gpt-4o-mini", provider="openai", usage=usage),
            Decimal("0.001"),
            0.25,
        )
    path = tmp_path / "otlp.json"
    path.write_text(MessageToJson(encode_spans(exporter.get_finished_spans())))
    [event] = import_otel(path).events
    assert (event.provider, event.model, event.usage) == ("openai", "gpt-4o-mini", usage)
    assert event.cost_usd == compute_cost(usage, "gpt-4o-mini").total_usd


def test_a_tokenomy_span_of_a_rejected_cascade_answer_imports_as_the_answer_it_was(ledger_path, tmp_path) -> None:
    """An answer a cascade's validators rejected has a failed span (error.type cascade_rejected), yet the provider
    answered it: imported as a server error, it read as an outage, and why it was rejected was lost."""
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tokenomy.analytics.imports import import_otel
    from tokenomy.chat_response import ChatResponse
    from tokenomy.messages import ChatRequest
    from tokenomy.telemetry.otel import attempt_span, record_success
    from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

    exporter, _ = in_memory_pipeline()
    exporter.clear()
    request = ChatRequest.simple("Name?", model="gpt-4o-mini", max_tokens=5)
    usage = Usage(input_tokens=200, output_tokens=30)
    with attempt_span(request, "openai", 1) as span:
        record_success(
            span,
            request,
            ChatResponse.of_text("I'm not sure", model="gpt-4o-mini", provider="openai", usage=usage),
            Decimal("0.001"),
            0.25,
            rejected=("hedging", 'hedging language: "i\'m not sure"'),
        )
    path = tmp_path / "otlp.json"
    path.write_text(MessageToJson(encode_spans(exporter.get_finished_spans())))
    [event] = import_otel(path).events
    assert (event.outcome, event.error_type, event.usage) == ("ok", None, usage)
    assert {k: v for k, v in event.tags.items() if k.startswith("cascade")} == {
        "cascade_rejected": "hedging",
        "cascade_reason": 'hedging language: "i\'m not sure"',
    }


def test_an_otel_span_of_a_flex_or_priority_call_is_priced_at_its_tier(ledger_path, tmp_path) -> None:
    """The GenAI semantic conventions name the tier a call was served at (`openai.response.service_tier`) and the one
    asked for (`openai.request.service_tier`; `gen_ai.openai.*` before they moved): every span was priced at the
    standard tier. o3 per 1M tokens (openai.yaml, from OpenAI's pricing page): standard $2 in / $8 out, flex $1 / $4,
    priority $3.50 / $14; each span 1,000 input and 100 output tokens."""

    def o3(n: int, **tier: str) -> dict:
        return _span(
            n,
            _attrs(
                **{
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "o3",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 100,
                    **tier,
                }
            ),
        )  # (_attrs reads "__" as ".")

    spans = [
        o3(0, openai__response__service_tier="flex", openai__request__service_tier="auto"),
        o3(1, openai__request__service_tier="priority"),
        o3(2, gen_ai__openai__response__service_tier="fast"),  # OpenAI's newer name for priority
        o3(3, openai__response__service_tier="default", openai__request__service_tier="flex"),  # not served
        o3(4),
    ]
    path = tmp_path / "traces.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    result = CliRunner().invoke(app, ["import", "otel", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert [e.cost_usd for e in rows] == [
        Decimal("0.0014"),
        Decimal("0.0049"),
        Decimal("0.0049"),
        Decimal("0.0028"),
        Decimal("0.0028"),
    ]
    assert [e.tags.get("service_tier") for e in rows] == ["flex", "priority", "priority", None, None]


def test_an_otel_span_of_a_claude_fast_mode_call_is_priced_at_its_fast_price(ledger_path, tmp_path) -> None:
    """Tokenomy's own spans name the tier their ledger row has (`tokenomy.service_tier`), for every API: a Claude
    call run in fast mode has `fast_mode`, which no OpenAI attribute can say. Imported, it was priced at the standard
    tier. Claude Opus 5 per 1M tokens (anthropic.yaml): standard $5 in / $25 out, fast mode $10 / $50; each span 1,000
    input and 100 output tokens."""
    spans = [
        _span(
            n,
            _attrs(
                **{
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-opus-5",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 100,
                    **tier,
                }
            ),
        )
        for n, tier in enumerate(({"tokenomy__service_tier": "fast_mode"}, {}))
    ]
    path = tmp_path / "traces.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    result = CliRunner().invoke(app, ["import", "otel", str(path), "--json", "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert [e.cost_usd for e in rows] == [Decimal("0.015"), Decimal("0.0075")]
    assert [e.tags.get("service_tier") for e in rows] == ["fast_mode", None]
