"""Bedrock's InvokeModel with an embedding model's own body (Titan Text Embeddings, Cohere Embed), as boto3 callers
and LangChain's BedrockEmbeddings send it: boto3 → `tokenomy serve` → the Bedrock emulator; the vectors in the
body's own shape, Bedrock's token header, one ledger row, and every field carried or refused by name."""

from __future__ import annotations

import json

import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import stand_in_aws_keys
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
COHERE_V4 = "cohere.embed-v4:0"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    """(boto3 client, openai client, ledger path, stop) for a gateway in front of the Bedrock emulator."""
    stand_in_aws_keys(monkeypatch)
    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        bedrock_model = {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock}
        config = parse_config(
            {
                "models": {
                    "titan": {**bedrock_model, "model": TITAN},
                    "cohere": {**bedrock_model, "model": COHERE},
                    "cohere-v4": {**bedrock_model, "model": COHERE_V4},
                }
            }
        )
        server = ServerThread(create_app(config, str(ledger)), lifespan="on")
        url = server.__enter__()
        stopped = []

        def stop() -> None:
            if not stopped:
                stopped.append(server.__exit__(None, None, None))

        client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        try:
            yield client, sdk, ledger, stop
        finally:
            stop()


def test_a_titan_body_gets_titans_answer_and_the_same_vector_as_v1_embeddings(gateway) -> None:
    client, sdk, ledger, stop = gateway
    reply = client.invoke_model(modelId="titan", body=json.dumps({"inputText": "Paris in spring", "dimensions": 256}))
    answer = json.loads(reply["body"].read())
    # Titan V2 always answers embeddingsByType (with "float" when no embeddingTypes is asked), as Bedrock documents.
    assert set(answer) == {"embedding", "inputTextTokenCount", "embeddingsByType"} and len(answer["embedding"]) == 256
    assert answer["embeddingsByType"] == {"float": answer["embedding"]}
    assert (
        int(reply["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"])
        == answer["inputTextTokenCount"]
        > 0
    )
    same = sdk.embeddings.create(model="titan", input="Paris in spring", dimensions=256)
    assert same.data[0].embedding == answer["embedding"]
    asked = {"inputText": "Paris in spring", "dimensions": 256, "normalize": True, "embeddingTypes": ["float"]}
    typed = json.loads(client.invoke_model(modelId="titan", body=json.dumps(asked))["body"].read())
    assert typed["embeddingsByType"] == {"float": answer["embedding"]} == {"float": typed["embedding"]}
    request_id = reply["ResponseMetadata"]["RequestId"]
    stop()
    rows = [e for e in open_store(str(ledger)).events() if e.request_id == request_id]
    assert [(r.route, r.tags.get("operation"), r.input_tokens) for r in rows] == [
        ("titan", "embeddings", answer["inputTextTokenCount"])
    ]
    assert rows[0].cost_usd > 0


def test_a_cohere_body_gets_cohere_answers_in_order_with_the_input_type_it_sent(gateway) -> None:
    client, sdk, ledger, stop = gateway
    texts = ["first text", "second, longer text", "third"]
    reply = client.invoke_model(modelId="cohere", body=json.dumps({"texts": texts, "input_type": "search_query"}))
    answer = json.loads(reply["body"].read())
    assert answer["response_type"] == "embeddings_floats" and answer["texts"] == texts
    assert answer["id"] == reply["ResponseMetadata"]["RequestId"] and len(answer["embeddings"]) == 3
    each = [
        sdk.embeddings.create(model="cohere", input=text, extra_body={"input_type": "search_query"}).data[0]
        for text in texts
    ]
    assert answer["embeddings"] == [item.embedding for item in each]
    asked = {"texts": texts, "input_type": "search_query", "embedding_types": ["float"], "truncate": "NONE"}
    by_type = json.loads(client.invoke_model(modelId="cohere", body=json.dumps(asked))["body"].read())
    assert by_type["response_type"] == "embeddings_by_type" and by_type["embeddings"] == {"float": answer["embeddings"]}
    stop()
    rows = [e for e in open_store(str(ledger)).events() if e.request_id == answer["id"]]
    assert len(rows) == 1 and rows[0].input_tokens > 0 and rows[0].tags["operation"] == "embeddings"


def test_cohere_v4_answers_by_type_even_unasked_as_bedrock_does(gateway) -> None:
    # Embed v4 on Bedrock answers `embeddings: {"float": [...]}` whether or not embedding_types is sent; a caller
    # written against Bedrock reads `embeddings["float"]`.
    client = gateway[0]
    texts = ["first text", "second"]
    reply = client.invoke_model(modelId="cohere-v4", body=json.dumps({"texts": texts, "input_type": "search_query"}))
    answer = json.loads(reply["body"].read())
    assert answer["response_type"] == "embeddings_by_type" and list(answer["embeddings"]) == ["float"]
    assert [len(v) for v in answer["embeddings"]["float"]] == [1536, 1536] and answer["texts"] == texts


@pytest.mark.parametrize(
    ("model", "body", "params", "named"),
    [
        ("titan", {"inputText": "hi", "normalize": False}, {}, "normalize: the gateway's vectors are normalized"),
        ("titan", {"inputText": "hi", "embeddingTypes": ["binary"]}, {}, "embeddingTypes: the gateway returns float"),
        ("titan", {"inputText": "hi", "dimensions": 300}, {}, "dimensions: route `titan`"),
        ("titan", {"inputText": ""}, {}, "inputText: required"),
        ("titan", {"inputText": "x" * 50_001}, {}, "inputText: route `titan`: a text of 50001 characters"),
        (
            "cohere",
            {"texts": ["a", "x" * 2049], "input_type": "search_query"},
            {},
            "texts[1]: route `cohere`: a text of 2049 characters",
        ),
        ("titan", {"inputText": "hi", "extra": 1}, {}, "extra: not carried by the gateway"),
        (
            "titan",
            {"inputText": "hi"},
            {"guardrailIdentifier": "g", "guardrailVersion": "1"},
            "guardrailIdentifier: not",
        ),
        ("cohere", {"texts": ["a"]}, {}, "input_type: required"),
        (
            "cohere",
            {"texts": ["a"], "input_type": "search_query", "truncate": "END"},
            {},
            "truncate: the gateway never",
        ),
        (
            "cohere",
            {"texts": ["a"], "input_type": "search_query", "output_dimension": 512},
            {},
            "output_dimension: route `cohere`",
        ),
        (
            "cohere",
            {"texts": ["a"], "input_type": "search_query", "images": ["data:image/png;base64,AA=="]},
            {},
            "images: not carried",
        ),
        ("titan", {"texts": ["a"], "input_type": "search_query"}, {}, "input_type"),  # Titan has no input_type
        # Cohere Embed v4's image and interleaved inputs, without texts: a Cohere body all the same, not Claude's.
        (
            "cohere-v4",
            {"images": ["data:image/png;base64,AA=="], "input_type": "search_document"},
            {},
            "images: not carried",
        ),
        (
            "cohere-v4",
            {"inputs": [{"content": [{"type": "text", "text": "hi"}]}], "input_type": "search_document"},
            {},
            "inputs: not carried",
        ),
    ],
)
def test_what_the_gateway_cannot_carry_is_refused_by_name_and_nothing_is_billed(
    gateway, model, body, params, named
) -> None:
    client, _, ledger, stop = gateway
    with pytest.raises(ClientError) as refused:
        client.invoke_model(modelId=model, body=json.dumps(body), **params)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in refused.value.response["Error"]["Message"]
    stop()
    assert open_store(str(ledger)).events() == []


def test_an_embedding_body_on_the_stream_path_is_told_embedding_models_do_not_stream(gateway) -> None:
    client = gateway[0]
    with pytest.raises(ClientError, match="embedding models do not stream"):
        client.invoke_model_with_response_stream(modelId="titan", body=json.dumps({"inputText": "hi"}))
