"""A credential an upstream echoes never reaches a traceback: a user's script that lets a ProviderError go uncaught
prints the SDK's error it was raised from (its `__cause__`), which carried the key as the upstream sent it back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from helpers.echoing_upstream import echoing_upstream
from tokenomy.errors import ProviderError, remember_secret

OPENAI_KEY = "sk-proj-UpstreamOpenAIKey0123456789"
ODD_KEY = "plainUpstreamKeyWithoutPrefix42"  # no known shape: only the provider that sends it knows it is a key
ANTHROPIC_KEY = "sk-ant-api03-UpstreamClaudeKey0123456789"


@pytest.fixture
def echo_upstream():
    with echoing_upstream() as url:
        yield url


SCRIPT = """
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.config import load_config
from tokenomy.messages import ChatRequest
from tokenomy.resilience.retry import RetryPolicy

models = load_config({config!r}).model_specs()
with Tokenomy({ledger!r}, models=models) as client:
    client.chat(ChatRequest.simple("hello", model={model!r}, max_tokens=5),
                policy=CallPolicy(retry=RetryPolicy(max_attempts=1)))
"""


@pytest.mark.parametrize("model, key", [("gpt", OPENAI_KEY), ("odd", ODD_KEY), ("claude", ANTHROPIC_KEY)])
def test_an_uncaught_provider_error_prints_no_echoed_key_in_its_traceback(tmp_path, echo_upstream, model, key):
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai, model: gpt-4o-mini, base_url: "{echo_upstream}/v1", api_key_env: T_KEY}}
          odd: {{provider: openai, model: gpt-4o-mini, base_url: "{echo_upstream}/v1", api_key_env: T_KEY}}
          claude: {{provider: anthropic, model: claude-3-5-haiku-20241022, base_url: "{echo_upstream}",
                   api_key_env: T_KEY}}
        """)
    )
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT.format(config=str(config), ledger=str(tmp_path / "ledger.duckdb"), model=model))
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "T_KEY": key,
            "HOME": str(tmp_path),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        },
    )
    assert run.returncode == 1 and "ProviderError" in run.stderr, run.stderr
    # Before, the SDK's AuthenticationError printed above it ("The above exception was the direct cause") showed the
    # key the upstream echoed; it is still there, with its status and message, the key hidden.
    assert key not in run.stderr, run.stderr
    assert "AuthenticationError" in run.stderr and "401" in run.stderr and "Incorrect API key provided" in run.stderr


def test_an_error_chained_under_a_provider_error_is_scrubbed_whatever_its_kind() -> None:
    secret = remember_secret("plainSecretOfNoShape99")

    class Odd(Exception):  # builds its str from an attribute, not its args
        def __init__(self, detail: str) -> None:
            super().__init__()
            self.detail = detail

        def __str__(self) -> str:
            return f"upstream said {self.detail}"

    try:
        try:
            try:
                raise OSError(f"cannot reach https://u:{secret}@proxy.example/v1")
            except OSError as inner:
                raise Odd(f"bad key {secret}") from inner
        except Odd as exc:
            raise ProviderError("upstream refused", "client_error", status=401) from exc
    except ProviderError as caught:
        error = caught
    import traceback

    printed = "".join(traceback.format_exception(error))
    assert secret not in printed, printed
    assert "upstream said bad key ***" in printed and "cannot reach https://u:***@proxy.example/v1" in printed


def test_a_credential_in_a_urls_user_part_alone_is_hidden():
    """Some proxies take their token as the URL's user part alone (https://TOKEN@proxy/v1): scrub left it as given,
    hiding only a password after user:."""
    from tokenomy.errors import scrub

    error = ProviderError("cannot reach https://tokSECRET9876@proxy.example/v1 (connection refused)", "unavailable")
    assert "tokSECRET9876" not in str(error)
    assert "https://***@proxy.example/v1 (connection refused)" in str(error)
    assert scrub("at https://u:pw1@h/ and https://***@h/") == "at https://u:***@h/ and https://***@h/"


def test_url_without_credential_hides_a_password_or_a_lone_token_and_keeps_the_rest():
    from tokenomy.errors import url_without_credential

    assert url_without_credential("postgresql://app:s3cret@db:5432/ledger") == "postgresql://app:***@db:5432/ledger"
    assert url_without_credential("https://tokSECRET9876@proxy.example/v1?x=1") == "https://***@proxy.example/v1?x=1"
    assert url_without_credential("https://proxy.example/v1") == "https://proxy.example/v1"
    assert url_without_credential("clickhouse://default:p%40ss@ch:8123/db") == "clickhouse://default:***@ch:8123/db"
    # Not a URL urlsplit reads: the credential shapes still find the password.
    assert url_without_credential("http://u:pw1@[::1/x") == "http://u:***@[::1/x"
