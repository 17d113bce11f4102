"""The README's shell examples (```sh blocks) run as copied, on a temporary ledger made here. Those that need a
cloud account, a long run or a server are left out by the explicit list below, each with its reason (printed by
`test_the_not_run_list_names_real_examples`); they are not collected, so the suite reports no skips."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from helpers.cli import _seed

ROOT = REPO
TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))

# Command prefix -> why it is not run here. Every entry must still match a README command (checked below).
NOT_RUN = {
    "make demo": "creates .venv and installs packages (minutes); `make` targets are CI's job",
    "make test": "runs the whole test suite",
    "tokenomy chat": "loads the local llama.cpp model (slow on a shared CI core); tests/commands/test_core.py runs it",
    "tokenomy serve": "examples/gateway/team.yaml needs Bedrock credentials and a Redis server; serves until stopped",
    "curl": "needs the gateway of the line before; tests/gateway/test_readme_curl.py runs this exact curl against a "
    "local gateway",
    "tokenomy bench run": "calls Bedrock (needs an AWS account) and the local model for minutes",
    "tokenomy bench export-labels bench-out": "reads the bench-out directory of the skipped `bench run`",
}


def readme_commands() -> list[str]:
    """Every command line of every ```sh block: continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def _skip_reason(command: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if command.startswith(prefix)), None)


def test_the_not_run_list_names_real_examples() -> None:
    commands = readme_commands()
    assert len(commands) >= 10, commands
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in commands), f"{prefix!r} is no longer in the README; drop it here"
    print("\nREADME examples not run here:\n" + "\n".join(f"  {p}: {why}" for p, why in NOT_RUN.items()))


@pytest.mark.parametrize("command", [c for c in readme_commands() if _skip_reason(c) is None])
def test_readme_example_runs(command: str, tmp_path: Path) -> None:
    ledger = _seed(tmp_path / "ledger.duckdb", hours=48, n=50, model="anthropic.claude-v2:1")
    args = shlex.split(command)
    assert args[0] == "tokenomy", command
    env = {**os.environ, "TOKENOMY_LEDGER": str(ledger)}
    result = subprocess.run([TOKENOMY, *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (command, result.stderr)
    assert result.stdout.strip() and "Traceback" not in result.stderr, command


def test_the_alerts_example_shows_every_alerts_key_and_loads() -> None:
    """The README's `alerts:` example says "every key optional; defaults shown": it names every key there is."""
    import yaml

    from tokenomy.config_alerts import AlertSettings

    block = next(
        b
        for b in re.findall(r"^```yaml\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
        if b.startswith("budgets:")
    )
    data = yaml.safe_load(block)
    AlertSettings.from_config(data["alerts"], data.get("routing"))  # valid as written
    shown = set(data["alerts"]) | set(data.get("routing") or {})
    assert set(AlertSettings.model_fields) <= shown, set(AlertSettings.model_fields) - shown


def test_every_config_and_price_file_example_loads_and_passes_the_start_up_checks(tmp_path: Path) -> None:
    """Each ```yaml block is a tokenomy.yaml (or part of one) or a price file; each loads as written and `serve`'s
    start-up checks find nothing in it. A block that shows routes only gets the models it names, as local ones."""
    import yaml

    from tokenomy.config import TokenomyConfig, parse_config
    from tokenomy.config_checks import check_config
    from tokenomy.pricing.catalog import default_catalog

    blocks = re.findall(r"^```yaml\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    configs = prices = 0
    for number, block in enumerate(blocks):
        data = yaml.safe_load(block)
        if "provider" in data and "as_of" in data:  # a price file (`--prices FILE`)
            path = tmp_path / f"prices{number}.yaml"
            path.write_text(block)
            catalog = default_catalog().with_overrides(path)
            assert all(catalog.lookup(model) for model in data["models"]), block
            prices += 1
            continue
        assert set(data) <= set(TokenomyConfig.model_fields), (set(data) - set(TokenomyConfig.model_fields), block)
        if "routes" in data and "models" not in data and "tiers" not in data:
            named = {n for r in data["routes"].values() for n in [r.get("model"), *r.get("fallback", [])] if n}
            data["models"] = {name: {"provider": "local", "model": "local"} for name in named}
        config = parse_config(data, f"README.md yaml block {number + 1}")
        keys = {m.api_key_env: "set" for m in config.models.values() if m.api_key_env}
        findings = check_config(config, environ={**keys, "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"})
        assert findings.errors == [] and findings.warnings == [], (findings, block)
        configs += 1
    assert configs >= 6 and prices >= 1, (configs, prices)
