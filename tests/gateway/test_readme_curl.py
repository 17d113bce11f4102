"""The README's `curl` to the gateway works as copied, and a request without a key gets 401 when auth is on
(the body used to be validated first: a missing key got a 400 about the body)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import httpx

from helpers import REPO
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

README = REPO / "README.md"


def _readme_curl() -> list[str]:
    text = README.read_text()
    match = re.search(r"^curl .*?/v1/chat/completions$", text, re.S | re.M)
    assert match, "the README's curl example to the gateway is gone"
    return shlex.split(match.group(0).replace("\\\n", " "))


def test_readme_curl_works_as_copied_and_no_key_is_401(ledger_path: Path, monkeypatch) -> None:
    secret, _ = KeyStore(open_store(ledger_path)).create()
    with InstantOpenAI() as upstream:
        config = parse_config(
            {
                "auth": True,
                "models": {
                    "fast": {"provider": "openai", "model": "fast", "base_url": upstream, "api_key_env": "FAST_KEY"}
                },
                "routes": {"chat": {"model": "fast"}},
            }
        )
        monkeypatch.setenv("FAST_KEY", "x")
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            args = [a.replace("http://127.0.0.1:8080", url).replace("$KEY", secret) for a in _readme_curl()]
            out = subprocess.run([*args, "-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=60)
            body, status = out.stdout.rsplit("\n", 1)
            assert status == "200", body
            assert json.loads(body)["choices"][0]["message"]["content"] == "ok"
            # no key, and a body that is not JSON at all (what curl without Content-Type sends): 401, not 400
            for headers, content in (
                ({}, '{"model":"chat","messages":[{"role":"user","content":"hi"}]}'),
                ({"content-type": "application/x-www-form-urlencoded"}, "model=chat"),
            ):
                refused = httpx.post(url + "/v1/chat/completions", content=content, headers=headers)
                assert refused.status_code == 401, refused.text
                assert refused.json()["error"]["code"] == "invalid_api_key" or "API key" in refused.text
    events = open_store(ledger_path).events()
    assert [(e.task, e.tags) for e in events] == [("triage", {"team": "cx"})]
