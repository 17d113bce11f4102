"""A call not streamed to Claude on Bedrock whose answer may take longer than the model's timeout_s (the seconds its
upstream may stay silent): the Bedrock provider sends it through ConverseStream and hands back one answer, so a long
answer that keeps coming is not cut. Before, it was one Converse call silent until whole: it timed out, was billed and
retried. boto3 and the openai SDK drive a real gateway on 127.0.0.1 in front of the Bedrock emulator, whose engine
writes its answer a word at a time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import boto3
import openai
from botocore.config import Config

from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.engine import Prepared
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

ASK = "write at length please"  # answered "Re: write at length please": five words, five output tokens
ANSWER = "Re: write at length please"
CONVERSE = [{"role": "user", "content": [{"text": ASK}]}]


class PacedEngine(InstantEngine):
    """The instant engine's answer written a word at a time, `pace_s` apart: a long answer that keeps coming
    (ConverseStream sends each word as it comes; Converse is silent until the last)."""

    def __init__(self) -> None:
        super().__init__()
        self.pace_s = 0.0

    def generate(self, prepared: Prepared) -> Iterator[str | tuple[int, str]]:
        for piece in super().generate(prepared):
            if not isinstance(piece, str):
                yield piece
                continue
            for i, word in enumerate(piece.split(" ")):
                time.sleep(self.pace_s)
                yield word if i == 0 else " " + word


@contextlib.contextmanager
def bedrock_gateway(ledger):
    """The engine, the upstream paths called, and the gateway's URL: the models' timeout_s is 1 s, and an answer comes
    in five words 0.3 s apart (1.5 s in all; one not streamed is silent that long)."""
    engine, paths = PacedEngine(), []
    engine.pace_s = 0.3
    emulator = create_bedrock(engine=engine)

    async def recorded(scope, receive, send):
        if scope["type"] == "http":
            paths.append(scope["path"])
        await emulator(scope, receive, send)

    with ServerThread(recorded) as api:
        models = {
            "claude": "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "llama": "meta.llama3-8b-instruct-v1:0",  # its ConverseStream takes no tool use: not streamed for it
        }
        config = parse_config(
            {
                "models": {
                    name: {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": api,
                        "model": model,
                        "timeout_s": 1,
                    }
                    for name, model in models.items()
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            yield engine, paths, url


def runtime(url: str):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )


def test_a_long_answer_not_streamed_goes_through_converse_stream_and_comes_whole_in_one_row(ledger_path) -> None:
    with bedrock_gateway(ledger_path) as (_, paths, url):
        # A cap of 32,000 (a coding agent's) could take 15 minutes at 128,000 tokens an hour: past the 1 s timeout.
        reply = runtime(url).converse(modelId="claude", messages=CONVERSE, inferenceConfig={"maxTokens": 32000})
        assert reply["output"]["message"]["content"] == [{"text": ANSWER}] and reply["stopReason"] == "end_turn"
        assert reply["usage"]["outputTokens"] == 5
        chat = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
        completion = chat.chat.completions.with_raw_response.create(
            model="claude", max_tokens=8000, messages=[{"role": "user", "content": ASK}]
        )
        answer = completion.parse()
        assert answer.choices[0].message.content == ANSWER and answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None and answer.usage.completion_tokens == 5
        assert [path.rsplit("/", 1)[-1] for path in paths] == ["converse-stream", "converse-stream"]
    rows = open_store(str(ledger_path)).events()  # once the gateway stopped: its ledger writer flushed
    ids = [reply["ResponseMetadata"]["RequestId"], completion.headers["x-request-id"]]
    for request_id in ids:
        [row] = [e for e in rows if e.request_id == request_id]  # one attempt, answered: no timeout billed, retried
        assert (row.outcome, row.output_tokens) == ("ok", 5)
        assert row.cost_usd > 0 and row.ttft_ms is None  # as for a call not streamed: no first token was seen
    assert len(rows) == 2


def test_a_small_cap_or_a_model_whose_stream_takes_less_is_still_sent_to_converse(ledger_path) -> None:
    with bedrock_gateway(ledger_path) as (engine, paths, url):
        engine.pace_s = 0.0  # 16 tokens take ~0.45 s at 128,000 tokens an hour: within the 1 s timeout
        bedrock = runtime(url)
        small = bedrock.converse(modelId="claude", messages=CONVERSE, inferenceConfig={"maxTokens": 16})
        uncapped = bedrock.converse(modelId="claude", messages=CONVERSE)  # Bedrock's own default: not known here
        llama = bedrock.converse(modelId="llama", messages=CONVERSE, inferenceConfig={"maxTokens": 2000})
    for reply in (small, uncapped, llama):
        assert reply["output"]["message"]["content"] == [{"text": ANSWER}]
    assert [path.rsplit("/", 1)[-1] for path in paths] == ["converse"] * 3
