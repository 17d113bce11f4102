"""`tokenomy emulate bedrock|anthropic` as real processes, used by the real boto3 / anthropic clients."""

from __future__ import annotations

import subprocess
import sys

import anthropic
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")]

CLI = [sys.executable, "-m", "tokenomy.cli"]


def serve(*args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        CLI + ["emulate", *args, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_for_port(port, 60, proc)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_emulate_bedrock_serves_boto3_with_injected_throttling() -> None:
    proc, port = serve("bedrock", "--throttle-rate", "0.3", "--seed", "5")
    try:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        outcomes = []
        for _ in range(20):
            try:
                result = client.converse(
                    modelId="amazon.nova-micro-v1:0",
                    messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                    inferenceConfig={"maxTokens": 1},
                )
                assert result["usage"]["outputTokens"] == 1
                outcomes.append("ok")
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
                outcomes.append(exc.response["Error"]["Code"])
        assert set(outcomes) == {"ok", "ThrottlingException"}
    finally:
        stop(proc)


def test_emulate_anthropic_serves_the_sdk() -> None:
    proc, port = serve("anthropic")
    try:
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="x", max_retries=0)
        message = client.messages.create(
            model="claude-haiku-4-5-20251001", max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
        )
        assert message.content[0].text and message.usage.output_tokens <= 2
    finally:
        stop(proc)


def test_bad_throttle_rate_is_a_one_line_error() -> None:
    result = subprocess.run(
        CLI + ["emulate", "bedrock", "--throttle-rate", "1.5"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "--throttle-rate" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_or_negative_timings_are_named() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for command in ("bedrock", "openai-batch"):
            result = subprocess.run(
                CLI + ["emulate", command, "--port", str(port)], capture_output=True, text=True, timeout=60
            )
            # was uvicorn's log line and exit code 3
            assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
            assert "--port" in result.stderr
    for args in (["bedrock", "--batch-step-seconds", "-1"], ["openai-batch", "--validating-seconds", "-5"]):
        result = subprocess.run(CLI + ["emulate", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and args[1] in result.stderr, result.stderr
