"""Bedrock Runtime's CountTokens on the gateway: boto3's `bedrock-runtime` client `count_tokens` against a real gateway
on 127.0.0.1, in front of the Bedrock and Anthropic emulators and the local model. A count, in either input form
(`converse`, or an `invokeModel` body in Anthropic's Messages shape), equals the input tokens a real Converse of the
same prompt reports; errors are botocore's modelled exceptions, naming the caller's field; nothing is ledgered."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import stand_in_aws_keys
from helpers.anthropic_samples import COMPANIONS, GATEWAY_FIELDS, SAMPLES, request_fields
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
SYSTEM = "You answer in one short sentence."
# One prompt in Converse's shape and in Anthropic's Messages shape (an InvokeModel body for Claude on Bedrock).
CONVERSE = [
    {"role": "user", "content": [{"text": "What is the capital of France?"}]},
    {"role": "assistant", "content": [{"text": "Paris."}]},
    {"role": "user", "content": [{"text": "And of Italy?"}]},
]
MESSAGES = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL_CONFIG = {
    "tools": [
        {"toolSpec": {"name": "weather", "description": "The weather in a city.", "inputSchema": {"json": SCHEMA}}}
    ]
}
TOOLS = [{"name": "weather", "description": "The weather in a city.", "input_schema": SCHEMA}]


def invoke_body(**fields) -> bytes:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, **fields}).encode()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    return str(tmp_path_factory.mktemp("bedrock-count") / "ledger.duckdb")


@pytest.fixture(scope="module")
def served(ledger):
    """(boto3 client on the gateway, gateway URL, boto3 client on the Bedrock emulator itself)."""
    with pytest.MonkeyPatch.context() as env:
        stand_in_aws_keys(env)
        env.setenv("GPT_KEY", "unused")
        with ServerThread(create_anthropic()) as claude, ServerThread(create_bedrock()) as bedrock:
            config = parse_config(
                {
                    "models": {
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "sonnet": {
                            "provider": "bedrock",
                            "model": BEDROCK_SONNET,
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                        },
                        # An OpenAI-format model; never called (port 9 has no server): counting is refused before.
                        "gpt": {
                            "provider": "openai",
                            "model": "gpt",
                            "base_url": "http://127.0.0.1:9/v1",
                            "api_key_env": "GPT_KEY",
                            "price_as": "gpt-4o-mini",
                        },
                    }
                }
            )
            with ServerThread(create_app(config, ledger), lifespan="on") as url:
                client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
                upstream = boto3.client(
                    "bedrock-runtime", endpoint_url=bedrock, region_name="us-east-1", config=NO_RETRIES
                )
                client.converse(modelId="sonnet", messages=CONVERSE, inferenceConfig={"maxTokens": 1})  # loads
                yield client, url, upstream


def prompt_tokens(usage) -> int:
    return usage["inputTokens"] + usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)


@pytest.mark.parametrize("model", ["sonnet", "claude"])
def test_both_forms_count_what_a_converse_of_the_same_prompt_reports(served, model) -> None:
    client, _, upstream = served
    counts = []
    for converse, invoke in (
        ({"messages": CONVERSE}, {"messages": MESSAGES}),
        (
            {"messages": CONVERSE, "system": [{"text": SYSTEM}], "toolConfig": TOOL_CONFIG},
            {"messages": MESSAGES, "system": SYSTEM, "tools": TOOLS},
        ),
    ):
        counted = client.count_tokens(modelId=model, input={"converse": converse})["inputTokens"]
        invoked = client.count_tokens(modelId=model, input={"invokeModel": {"body": invoke_body(**invoke)}})
        reply = client.converse(modelId=model, inferenceConfig={"maxTokens": 2}, **converse)
        assert counted == invoked["inputTokens"] == prompt_tokens(reply["usage"]) > 0
        if model == "sonnet":  # what the Bedrock emulator itself reports for a Converse of the same prompt
            direct = upstream.converse(modelId=BEDROCK_SONNET, inferenceConfig={"maxTokens": 2}, **converse)
            assert counted == prompt_tokens(direct["usage"])
        counts.append(counted)
    assert counts[1] > counts[0]  # the system prompt and the tool are counted too


def test_an_invoke_bodys_answer_fields_are_left_out_of_the_count_and_its_betas_carried(served, monkeypatch) -> None:
    """max_tokens, sampling, stop sequences, metadata and service_tier shape only the call; anthropic_beta reaches
    Anthropic's API as its beta header and Bedrock's Converse in additionalModelRequestFields (where Claude's own
    body takes it)."""
    from tokenomy.providers import anthropic_provider, bedrock, converse_mapping

    counted_requests, converse_params = [], []
    original_count = anthropic_provider.AnthropicProvider.count_tokens
    original_params = converse_mapping.to_converse_params
    monkeypatch.setattr(
        anthropic_provider.AnthropicProvider,
        "count_tokens",
        lambda self, request: counted_requests.append(request) or original_count(self, request),
    )
    monkeypatch.setattr(
        bedrock,
        "to_converse_params",
        lambda request: converse_params.append(original_params(request)) or converse_params[-1],
    )
    client = served[0]
    bare = client.count_tokens(modelId="claude", input={"invokeModel": {"body": invoke_body(messages=MESSAGES)}})
    betas = ["token-efficient-tools-2025-02-19", "interleaved-thinking-2025-05-14"]
    # metadata and service_tier too: InvokeModel takes them, and they change nothing the model reads.
    shaped = invoke_body(
        messages=MESSAGES,
        temperature=0.5,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END"],
        anthropic_beta=betas,
        metadata={"user_id": "u-1"},
        service_tier="auto",
    )
    for model in ("claude", "sonnet"):
        counted = client.count_tokens(modelId=model, input={"invokeModel": {"body": shaped}})["inputTokens"]
        assert counted == client.count_tokens(modelId=model, input={"converse": {"messages": CONVERSE}})["inputTokens"]
    assert counted == bare["inputTokens"]
    assert counted_requests[1].extra == {"anthropic-beta": ",".join(betas)}
    assert converse_params[0]["additionalModelRequestFields"] == {"anthropic_beta": betas}
    assert "inferenceConfig" not in converse_params[0]


@pytest.mark.parametrize("model", ["claude", "sonnet"])
def test_an_invoke_body_with_structured_output_is_counted(served, model) -> None:
    # output_config (a JSON schema for the answer, an effort) is part of Claude's InvokeModel body: counted as the
    # provider counts it, not refused as a field the body lacks.
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    body = invoke_body(messages=MESSAGES, output_config={"format": {"type": "json_schema", "schema": schema}})
    counted = served[0].count_tokens(modelId=model, input={"invokeModel": {"body": body}})["inputTokens"]
    assert counted >= served[0].count_tokens(modelId=model, input={"converse": {"messages": CONVERSE}})["inputTokens"]


def test_an_openai_format_route_cannot_count_and_says_so(served) -> None:
    client = served[0]
    for given in ({"converse": {"messages": CONVERSE}}, {"invokeModel": {"body": invoke_body(messages=MESSAGES)}}):
        with pytest.raises(ClientError) as refused:
            client.count_tokens(modelId="gpt", input=given)
        error = refused.value.response["Error"]
        assert error["Code"] == "ValidationException"
        assert "provider `openai`" in error["Message"] and "counting tokens is not available" in error["Message"]


def test_an_unknown_model_is_resource_not_found(served) -> None:
    with pytest.raises(ClientError) as missing:
        served[0].count_tokens(modelId="nope", input={"converse": {"messages": CONVERSE}})
    error = missing.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException" and "`nope` does not exist on this gateway" in error["Message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"inputText": "hi", "textGenerationConfig": {"maxTokenCount": 5}}, "input.invokeModel.body.inputText"),
        ({"prompt": "hi", "max_gen_len": 5}, "input.invokeModel.body.prompt"),
        ({"schemaVersion": "messages-v1", "messages": CONVERSE}, "input.invokeModel.body.schemaVersion"),
    ],
)
def test_an_invoke_body_of_another_model_family_is_refused_naming_it(served, body, named) -> None:
    with pytest.raises(ClientError) as refused:
        served[0].count_tokens(modelId="sonnet", input={"invokeModel": {"body": json.dumps(body).encode()}})
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(f"{named}: not a field of Anthropic's Messages body")
    assert "converse form (input.converse)" in error["Message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"inputText": "hi", "dimensions": 256}, "input.invokeModel.body.inputText"),  # Titan Text Embeddings
        ({"texts": ["hi"], "input_type": "search_query"}, "input.invokeModel.body.texts"),  # Cohere Embed
    ],
)
def test_an_embedding_models_body_is_told_counttokens_counts_no_embeddings(served, body, named) -> None:
    # Not pointed at the converse form, which counts a chat prompt: an embedding model has none to count.
    with pytest.raises(ClientError) as refused:
        served[0].count_tokens(modelId="sonnet", input={"invokeModel": {"body": json.dumps(body).encode()}})
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException" and error["Message"].startswith(f"{named}: ")
    assert "x-amzn-bedrock-input-token-count" in error["Message"] and "input.converse" not in error["Message"]


@pytest.mark.parametrize(
    ("model", "given", "named"),
    [
        (
            "sonnet",
            {
                "converse": {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"text": "a"},
                                {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://bucket/cat.png"}}}},
                            ],
                        }
                    ]
                }
            },
            "input.converse.messages[0].content[1].image.source.s3Location",
        ),
        (
            "claude",
            {"converse": {"messages": CONVERSE, "additionalModelRequestFields": {"service_tier": "auto"}}},
            "input.converse.additionalModelRequestFields: the gateway carries this field to Bedrock models only",
        ),
        (
            "sonnet",
            {"invokeModel": {"body": invoke_body(messages=[{"role": "robot", "content": "x"}])}},
            "input.invokeModel.body.messages.0.role",
        ),
        (
            "sonnet",
            {"invokeModel": {"body": invoke_body(messages=MESSAGES, anthropic_version=20230531)}},
            "input.invokeModel.body.anthropic_version: expected a version such as 'bedrock-2023-05-31'",
        ),
        (
            "sonnet",
            {"invokeModel": {"body": invoke_body(messages=MESSAGES, model="claude")}},
            "input.invokeModel.body.model: not a field of Anthropic's Messages body",
        ),
        ("sonnet", {"invokeModel": {"body": b"not json"}}, "input.invokeModel.body: expected a JSON object"),
        # The edge's checks saw only the body's base64: these reached the Anthropic SDK's encoder, a 500
        *(
            (
                "claude",
                {
                    "invokeModel": {
                        "body": json.dumps(
                            {
                                "anthropic_version": "bedrock-2023-05-31",
                                "messages": MESSAGES,
                                "tools": [
                                    {
                                        **TOOLS[0],
                                        "input_schema": {
                                            "type": "object",
                                            "properties": {"n": {"type": "number", "maximum": "MAX"}},
                                        },
                                    }
                                ],
                            }
                        )
                        .replace('"MAX"', number)
                        .encode()
                    }
                },
                "input.invokeModel.body.tools.0.input_schema.properties.n.maximum: ",
            )
            for number in ("NaN", "-Infinity", "1e400")
        ),
        (
            "claude",
            {
                "invokeModel": {
                    "body": json.dumps(
                        {
                            "anthropic_version": "bedrock-2023-05-31",
                            "messages": [{"role": "user", "content": "hi \ud800"}],
                        }
                    ).encode()
                }
            },
            "input.invokeModel.body.messages.0.content: contains a lone",
        ),
    ],
)
def test_what_a_count_cannot_carry_is_a_validation_exception_naming_it(served, model, given, named) -> None:
    with pytest.raises(ClientError) as refused:
        served[0].count_tokens(modelId=model, input=given)
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException" and named in error["Message"], error


def test_malformed_bodies_botocore_would_not_send_are_named_too(served) -> None:
    url = served[1]
    for body, named in (
        (b"{", "Expecting"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"input": {}}).encode(), "input: expected exactly one of converse or invokeModel"),
        (json.dumps({"input": {"converse": {"messages": CONVERSE}}, "x": 1}).encode(), "x: not a field"),
        (
            json.dumps({"input": {"converse": {"messages": CONVERSE, "inferenceConfig": {"maxTokens": 5}}}}).encode(),
            "input.converse.inferenceConfig: not a field of CountTokens'",
        ),
        (
            json.dumps({"input": {"invokeModel": {"body": "not base64!"}}}).encode(),
            "input.invokeModel.body: expected the body's bytes, base64-encoded",
        ),
    ):
        answer = httpx.post(
            f"{url}/model/sonnet/count-tokens", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400, body
        assert answer.headers["x-amzn-ErrorType"] == "ValidationException" and named in answer.json()["message"]


def test_a_key_rides_in_boto3s_credentials_takes_its_rate_limit_and_no_count_is_ledgered(tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    secret, _ = KeyStore(open_store(ledger)).create(rpm=4, budget_usd=Decimal("0.000001"))
    with ServerThread(create_anthropic()) as claude:
        config = parse_config(
            {"auth": True, "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": claude}}}
        )
        with ServerThread(create_app(config, ledger), lifespan="on") as url:
            session = boto3.session.Session(aws_access_key_id=secret, aws_secret_access_key="anything")
            client = session.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            with pytest.raises(ClientError) as spent:  # a call's reservation exceeds the key's budget ...
                client.converse(modelId="claude", messages=CONVERSE)
            assert spent.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
            # ... and a count is free: it reserves nothing, but each is a request under the key's rate limit.
            counts = [
                client.count_tokens(modelId="claude", input={"converse": {"messages": CONVERSE}})["inputTokens"]
                for _ in range(3)
            ]
            assert counts[0] == counts[1] == counts[2] > 0
            with pytest.raises(ClientError) as throttled:
                client.count_tokens(modelId="claude", input={"converse": {"messages": CONVERSE}})
            assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
            assert "Rate limit of 4 requests per minute" in throttled.value.response["Error"]["Message"]
            stranger = boto3.session.Session(aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
            denied = stranger.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            with pytest.raises(ClientError, match="AWS_BEARER_TOKEN_BEDROCK") as refused:
                denied.count_tokens(modelId="claude", input={"converse": {"messages": CONVERSE}})
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
            wrong = boto3.session.Session(aws_access_key_id="tk-wrong", aws_secret_access_key="x")
            unknown_key = wrong.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            with pytest.raises(ClientError) as unknown:
                unknown_key.count_tokens(modelId="claude", input={"converse": {"messages": CONVERSE}})
            assert unknown.value.response["Error"]["Code"] == "AccessDeniedException"
    assert open_store(ledger).count() == 0  # the refused call reserved nothing either; a count writes no row


def test_counts_write_no_ledger_row_beside_a_call(tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(create_anthropic()) as claude:
        config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": claude}}})
        with ServerThread(create_app(config, ledger), lifespan="on") as url:  # flushes its ledger on exit
            client = boto3.client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                config=NO_RETRIES,
                aws_access_key_id="x",
                aws_secret_access_key="x",
            )
            client.converse(modelId="claude", messages=CONVERSE, inferenceConfig={"maxTokens": 2})
            for given in (
                {"converse": {"messages": CONVERSE}},
                {"invokeModel": {"body": invoke_body(messages=MESSAGES)}},
            ):
                assert client.count_tokens(modelId="claude", input=given)["inputTokens"] > 0
    assert open_store(ledger).count() == 1  # the call's row, and none for the counts


# One sample per member of botocore's ConverseTokensRequest (CountTokens' converse input).
CONVERSE_COUNT_SAMPLES = {
    "system": [{"text": SYSTEM}],
    "toolConfig": TOOL_CONFIG,
    "additionalModelRequestFields": {"top_k": 5},
}
READ = {"system", "toolConfig", "tools", "tool_choice"}  # what the model reads: the count grows


@pytest.mark.parametrize("model", ["sonnet", "claude"])
def test_every_member_of_either_count_input_is_counted_or_refused_by_name(served, model) -> None:
    """Each member of the installed botocore's ConverseTokensRequest, and each field of the anthropic SDK's
    MessageCreateParams in an invokeModel body (Claude's Bedrock body), is counted (what the model reads makes the
    count grow) or refused naming it. A field a newer botocore or SDK adds fails here until it gets a sample."""
    import botocore.session

    client = served[0]
    model_of = botocore.session.get_session().get_service_model("bedrock-runtime")
    assert set(model_of.shape_for("CountTokensInput").members) == {"converse", "invokeModel"}
    forms = [("converse", member, {member: sample}) for member, sample in CONVERSE_COUNT_SAMPLES.items()]
    for member in model_of.shape_for("ConverseTokensRequest").members:
        assert member == "messages" or member in CONVERSE_COUNT_SAMPLES, f"CountTokens' converse has {member!r}"
    for field in request_fields():
        if field not in GATEWAY_FIELDS and field != "workspace_id":  # workspace_id: a header, never in the body
            forms.append(("invokeModel", field, {field: SAMPLES[field], **COMPANIONS.get(field, {})}))
    bare = {
        "converse": client.count_tokens(modelId=model, input={"converse": {"messages": CONVERSE}})["inputTokens"],
        "invokeModel": client.count_tokens(
            modelId=model, input={"invokeModel": {"body": invoke_body(messages=MESSAGES)}}
        )["inputTokens"],
    }
    for form, field, given in forms:
        asked = (
            {"messages": CONVERSE, **given} if form == "converse" else {"body": invoke_body(messages=MESSAGES, **given)}
        )
        try:
            counted = client.count_tokens(modelId=model, input={form: asked})["inputTokens"]
        except ClientError as refused:
            message = refused.response["Error"]["Message"]
            place = f"input.{form}.{field}" if form == "converse" else f"input.invokeModel.body.{field}"
            assert place in message, (form, field, message)
            continue
        assert counted > bare[form] if field in READ else counted >= bare[form] > 0, (form, field)
