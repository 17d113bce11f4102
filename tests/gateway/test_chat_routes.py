"""`POST /v1/chat/completions`: what a request the gateway fails to translate leaves in its log."""

from __future__ import annotations

import logging

import openai
import pytest

from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway import chat_routes
from tokenomy.gateway.app import create_app

PROMPT = "Draft the layoff notice for the Leeds team"


def test_a_request_that_cannot_be_translated_is_logged_without_its_text(tmp_path, monkeypatch, caplog):
    def mistranslated(body, headers, key, route):
        # A mapping fault whose error quotes a value of the request, as a KeyError or TypeError does.
        raise KeyError(body.messages[0].content)

    monkeypatch.setattr(chat_routes, "to_chat_request", mistranslated)
    caplog.set_level(logging.WARNING)
    with InstantOpenAI() as upstream:
        config = {"models": {"m": {"provider": "openai", "model": "gpt-4o-mini", "base_url": upstream}}}
        app = create_app(parse_config(config), str(tmp_path / "ledger.duckdb"))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}])
    assert "unexpected shape" in str(refused.value)  # the caller is still told, in its own request's words
    # Before, the log had the error's repr: KeyError('Draft the layoff notice ...').
    assert "could not be translated" in caplog.text and "KeyError" in caplog.text
    assert PROMPT not in caplog.text, caplog.text
