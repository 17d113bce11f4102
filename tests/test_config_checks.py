"""A gateway config is checked at start: unknown model ids (recorded at $0) with did-you-mean, unset key
variables, and a price_as the catalog does not know."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tokenomy.config import parse_config
from tokenomy.config_checks import check_config

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"  # past its Bedrock EOL in us-east-1 (2026-09-10)
HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"


def test_unknown_ids_and_unset_keys_are_named() -> None:
    config = parse_config(
        {
            "models": {
                "haiku": {
                    "provider": "bedrock",
                    "model": "anthropic.claude-3-haku-20240307-v1:0",
                    "region": "us-east-1",
                },
                "gpt": {"provider": "openai", "model": "gpt-4o-mini", "api_key_env": "TOKENOMY_TEST_UNSET_KEY"},
                "fine": {"provider": "bedrock", "model": f"us.{HAIKU_45}", "region": "us-east-1"},
                "own": {"provider": "openai", "model": "llama", "base_url": "http://127.0.0.1:1/v1", "price_as": HAIKU},
                "free": {"provider": "local"},
            }
        },
        "t.yaml",
    )
    found = check_config(config, environ={})
    assert found.errors == []
    assert len(found.warnings) == 2, found.warnings
    typo, key = found.warnings  # in the order of `models:`
    assert typo.startswith(
        "t.yaml: models.haiku.model: 'anthropic.claude-3-haku-20240307-v1:0' is not in the price "
        "catalog, so its calls would be recorded at $0. Did you mean "
        f"'{HAIKU}'"
    ), typo
    assert key.startswith("t.yaml: models.gpt.api_key_env: $TOKENOMY_TEST_UNSET_KEY is not set"), key
    assert check_config(config, environ={"TOKENOMY_TEST_UNSET_KEY": "x"}).warnings == [typo]


def test_serve_warns_on_stderr_and_refuses_an_unknown_price_as(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "models:\n"
        "  haiku: {provider: bedrock, model: anthropic.claude-3-haku-20240307-v1:0, region: us-east-1}\n"
        "  gpt: {provider: openai, model: gpt-4o-mini, api_key_env: TOKENOMY_TEST_UNSET_KEY}\n"
        "  own: {provider: openai, model: llama, base_url: 'http://127.0.0.1:1/v1', "
        "price_as: meta.llama3-1-8b-instrct-v1:0}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TOKENOMY_TEST_UNSET_KEY"}
    result = subprocess.run(
        [TOKENOMY, "serve", "--config", str(cfg), "--port", "0", "--ledger", str(tmp_path / "l.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in result.stderr, lines
    assert lines[0].startswith("warning: ") and "models.haiku.model" in lines[0] and "Did you mean" in lines[0]
    assert lines[1].startswith("warning: ") and "$TOKENOMY_TEST_UNSET_KEY is not set" in lines[1]
    assert lines[2].startswith("error: ") and "models.own.price_as" in lines[2]
    assert "'meta.llama3-1-8b-instruct-v1:0'" in lines[2]


def test_serve_warns_of_a_route_to_a_model_past_its_bedrock_eol(tmp_path: Path) -> None:
    # Bedrock's own EOL day, from AWS's model card: every call to it fails, so serve says so before the first one
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "models:\n"
        f"  cheap: {{provider: bedrock, model: 'us.{HAIKU}', region: us-east-1}}\n"
        f"  fine: {{provider: bedrock, model: 'us.{HAIKU_45}', region: us-east-1}}\n"
        "  own: {provider: openai, model: llama, base_url: 'http://127.0.0.1:1/v1', "
        "price_as: meta.llama3-1-8b-instrct-v1:0}\n"  # an error, so serve stops after its checks
        "routes:\n"
        "  triage: {model: cheap, fallback: [fine]}\n"
    )
    result = subprocess.run(
        [TOKENOMY, "serve", "--config", str(cfg), "--port", "0", "--ledger", str(tmp_path / "l.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr, lines
    assert lines[0].startswith(
        f"warning: {cfg}: models.cheap.model: 'us.{HAIKU}' was retired on 2026-09-10 "
        "(https://docs.aws.amazon.com/bedrock/latest/userguide/model-card-anthropic-claude-3-haiku.html"
    ), lines[0]
    assert "every call to it fails (used by routes.triage)" in lines[0], lines[0]
    assert lines[1].startswith("error: ") and "models.own.price_as" in lines[1]
