"""The headers a chat completion reads (the key, Tokenomy's task and tags), however the client spells their names, the
first of a repeated one, as the gateway has always read them; the ledger rows carry what they said."""

from __future__ import annotations

from decimal import Decimal

import httpx

from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
BODY = {"model": "fast", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}


def test_the_key_task_and_tags_headers_reach_the_call_and_its_ledger_row(ledger_path, monkeypatch) -> None:
    monkeypatch.setenv("FAST_KEY", "sk-test")
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("5"), team="web")
    with InstantOpenAI() as upstream:
        config = parse_config(
            {
                "auth": True,
                "models": {
                    "fast": {
                        "provider": "openai",
                        "model": "fast",
                        "base_url": upstream,
                        "api_key_env": "FAST_KEY",
                        "price_as": HAIKU,
                    }
                },
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            post = f"{url}/v1/chat/completions"
            headers = [  # as a client may spell them, one of them twice: the first counts
                ("Authorization", f"Bearer {secret}"),
                ("X-Tokenomy-Task", "greet"),
                ("x-tokenomy-task", "other"),
                ("X-TOKENOMY-TAGS", "feature=hello,env=ci"),
            ]
            answer = httpx.post(post, json=BODY, headers=headers)
            assert answer.status_code == 200, answer.text
            assert httpx.post(post, json=BODY).status_code == 401  # no key
            wrong = httpx.post(post, json=BODY, headers={"authorization": "Bearer sk-nope"})
            assert wrong.status_code == 401
            bad_tags = httpx.post(
                post, json=BODY, headers={"authorization": f"Bearer {secret}", "x-tokenomy-tags": "{oops"}
            )
            assert bad_tags.status_code == 400 and "x-tokenomy-tags" in bad_tags.json()["error"]["message"]
    [row] = open_store(ledger_path).events()
    assert (row.task, row.tags, row.key_id, row.tenant) == (
        "greet",
        {"feature": "hello", "env": "ci"},
        key.key_id,
        "web",
    )
    assert row.request_id == answer.headers["x-request-id"]
