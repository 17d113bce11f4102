"""A chat completion's body is validated from the value the edge parsed, or from its bytes when the edge has none
(orjson refuses an integer past 64 bits) or the value does not validate: the same request, and the same 400."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.gateway.app import create_app

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FAST_KEY", "sk-test")
    with InstantOpenAI() as url:
        config = parse_config(
            {
                "models": {
                    "fast": {
                        "provider": "openai",
                        "model": "fast",
                        "base_url": url,
                        "api_key_env": "FAST_KEY",
                        "price_as": HAIKU,
                    }
                }
            }
        )
        with TestClient(create_app(config, str(tmp_path / "ledger.duckdb"))) as client:
            yield client


def _post(client, text: str):
    return client.post("/v1/chat/completions", content=text, headers={"content-type": "application/json"})


def test_a_body_the_edge_parsed_and_one_it_could_not_are_read_alike(client) -> None:
    parsed = _post(client, json.dumps({"model": "fast", "messages": MESSAGES, "max_tokens": 4, "seed": 7}))
    from_bytes = _post(client, json.dumps({"model": "fast", "messages": MESSAGES, "max_tokens": 4, "seed": 2**70}))
    assert parsed.status_code == from_bytes.status_code == 200, from_bytes.text
    assert parsed.json()["choices"][0]["message"] == from_bytes.json()["choices"][0]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "fast", "messages": MESSAGES, "max_tokens": "10"}, "max_tokens"),  # strict: no string for a number
        ({"model": "fast", "messages": "hi"}, "messages"),
        ({"model": "fast", "messages": MESSAGES, "seed": 2**70, "stream": "yes"}, "stream"),  # from the bytes
    ],
)
def test_a_body_that_does_not_validate_is_a_400_naming_the_field(client, body: dict, field: str) -> None:
    answer = _post(client, json.dumps(body))
    assert answer.status_code == 400, answer.text
    assert field in answer.text
