"""The demo's gateway step: each official SDK's question reaches the local model through one gateway, and the
gateway's ledger has each call, even with a Bedrock API key in the environment (botocore would send it as a
bearer token, which it refuses over http)."""

from __future__ import annotations

from rich.console import Console

from tokenomy.client import Tokenomy
from tokenomy.demo import gateway
from tokenomy.demo.context import DemoContext
from tokenomy.ledger.store import open_store


def test_each_sdk_reaches_the_local_model_through_the_gateway(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "a-bedrock-api-key")
    store = open_store(tmp_path / "ledger.duckdb")
    console = Console(record=True, width=200)
    with Tokenomy(store) as client:
        gateway.run(DemoContext(client=client, store=store, console=console, workdir=tmp_path))
    shown = console.export_text()
    apis = (
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/model/local/converse",
        "/model/local/invoke",
        "/v1beta/models/local:generateContent",
    )
    assert all(api in shown for api in apis)
    events = open_store(tmp_path / "gateway.duckdb").events()
    assert len(events) == 6 and {e.outcome for e in events} == {"ok"} and all(e.output_tokens for e in events)
    assert "6 calls answered, 6 rows in the gateway's ledger" in shown
