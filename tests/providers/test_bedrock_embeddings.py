"""OpenAI's embeddings request as Bedrock's InvokeModel bodies and back (`providers.bedrock_embeddings`), with a
scripted `invoke`: the order of concurrent Titan calls, Cohere's batches of 96, tokens from the body or the header,
base64 as OpenAI encodes it, and a failure midway billed for the calls that answered."""

from __future__ import annotations

import base64
import random
import struct
import threading
import time

import pytest

from tokenomy.errors import ProviderError
from tokenomy.providers import bedrock_embeddings as be

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-multilingual-v3"


def test_titan_is_one_call_per_text_in_flight_together_and_answered_in_the_inputs_order() -> None:
    texts = [f"text number {i}" for i in range(20)]
    sent: list[dict] = []
    lock = threading.Lock()
    in_flight = peak = 0

    def invoke(body: dict) -> tuple[dict, dict]:
        nonlocal in_flight, peak
        with lock:
            sent.append(body)
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(random.uniform(0, 0.02))  # answers come back out of order
        with lock:
            in_flight -= 1
        index = int(body["inputText"].rsplit(" ", 1)[1])
        return {"embedding": [float(index)] * 4, "inputTextTokenCount": index + 1}, {}

    answer = be.embed(invoke, {"model": TITAN, "input": texts, "dimensions": 256}, TITAN)
    assert [d["embedding"] for d in answer["data"]] == [[float(i)] * 4 for i in range(20)]
    assert [d["index"] for d in answer["data"]] == list(range(20))
    assert answer["usage"] == {"prompt_tokens": sum(range(1, 21)), "total_tokens": sum(range(1, 21))}
    assert 1 < peak <= be.TITAN_CONCURRENCY
    assert sorted(sent, key=lambda b: b["inputText"])[0] == {
        "inputText": "text number 0",
        "dimensions": 256,
        "normalize": True,
        "embeddingTypes": ["float"],
    }


def test_cohere_sends_batches_of_96_with_the_input_type_and_reads_tokens_from_the_header() -> None:
    texts = [f"t{i}" for i in range(200)]
    sent: list[dict] = []

    def invoke(body: dict) -> tuple[dict, dict]:
        sent.append(body)
        vectors = [[float(t[1:])] for t in body["texts"]]
        return {"embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}, {
            "x-amzn-bedrock-input-token-count": str(len(body["texts"]))
        }

    answer = be.embed(invoke, {"model": COHERE, "input": texts, "input_type": "search_query"}, COHERE)
    assert [len(b["texts"]) for b in sent] == [96, 96, 8]
    assert {(b["input_type"], b["truncate"], tuple(b["embedding_types"])) for b in sent} == {
        ("search_query", "NONE", ("float",))
    }
    assert [d["embedding"] for d in answer["data"]] == [[float(i)] for i in range(200)]
    assert answer["usage"]["prompt_tokens"] == 200
    default = be.invoke_bodies({"model": COHERE, "input": "x"}, COHERE)
    assert default == [
        {"texts": ["x"], "input_type": "search_document", "truncate": "NONE", "embedding_types": ["float"]}
    ]
    v4 = be.invoke_bodies({"model": "cohere.embed-v4:0", "input": "x", "dimensions": 512}, "us.cohere.embed-v4:0")
    assert v4[0]["output_dimension"] == 512


def test_no_token_count_means_no_usage_and_base64_is_little_endian_float32() -> None:
    vector = [0.5, -0.25, 1 / 3]
    answer = be.embed(
        lambda body: ({"embeddings": [vector]}, {}),
        {"model": COHERE, "input": "x", "encoding_format": "base64"},
        COHERE,
    )
    assert "usage" not in answer
    decoded = list(struct.unpack("<3f", base64.b64decode(answer["data"][0]["embedding"])))
    assert decoded == list(struct.unpack("<3f", struct.pack("<3f", *vector)))


def test_a_failure_midway_is_raised_with_the_tokens_of_the_calls_that_answered() -> None:
    def invoke(body: dict) -> tuple[dict, dict]:
        if body["texts"][0] == "t96":
            raise ProviderError("Bedrock ThrottlingException: slow down", kind="throttled")
        return {"embeddings": [[0.0]] * len(body["texts"])}, {"x-amzn-bedrock-input-token-count": "7"}

    with pytest.raises(ProviderError) as failed:
        be.embed(invoke, {"model": COHERE, "input": [f"t{i}" for i in range(200)]}, COHERE)
    assert failed.value.kind == "throttled" and failed.value.billed_tokens == 7
    assert failed.value.unsent_calls == 1  # the third batch: a rate limit gives its request back
    with pytest.raises(ProviderError) as broken:  # an answer without embeddings: billed, not retried as sound
        be.embed(lambda body: ({"inputTextTokenCount": 3}, {}), {"model": TITAN, "input": "x"}, TITAN)
    assert broken.value.kind == "server_error" and broken.value.reached


def test_titan_calls_no_thread_had_begun_when_one_failed_are_counted_unsent() -> None:
    # Ten texts, eight threads: the first call fails at once while the other seven are still out, so at least the
    # last was never begun (the first's thread may take the ninth before the failure is seen). Those are not sent,
    # and the error counts them (the gateway's rate limit gives them back).
    sent: list[str] = []

    def invoke(body: dict) -> tuple[dict, dict]:
        sent.append(body["inputText"])
        if body["inputText"] == "t0":
            raise ProviderError("Bedrock ThrottlingException: slow down", kind="throttled")
        time.sleep(0.5)
        return {"embedding": [0.0], "inputTextTokenCount": 1}, {}

    with pytest.raises(ProviderError) as failed:
        be.embed(invoke, {"model": TITAN, "input": [f"t{i}" for i in range(10)]}, TITAN)
    assert be.TITAN_CONCURRENCY == 8 and len(sent) in (8, 9), sent
    assert failed.value.unsent_calls == 10 - len(sent) and failed.value.billed_tokens == len(sent) - 1


def test_a_calls_client_error_names_the_callers_inputs_it_carried() -> None:
    # Bedrock names a text by its place in its own call (#/texts/4), or not at all (Titan's one inputText): among
    # many inputs the caller is told which of theirs the refused call carried.
    def invoke(body: dict) -> tuple[dict, dict]:
        if "bad" in body.get("texts", [body.get("inputText")]):
            raise ProviderError("Bedrock ValidationException: Too many input tokens.", kind="client_error", status=400)
        return {"embedding": [0.0], "embeddings": [[0.0]] * len(body.get("texts", [1])), "inputTextTokenCount": 1}, {}

    with pytest.raises(ProviderError) as titan:
        be.embed(invoke, {"model": TITAN, "input": ["a", "b", "bad", "c"]}, TITAN)
    assert str(titan.value) == "input[2]: Bedrock ValidationException: Too many input tokens."
    with pytest.raises(ProviderError) as cohere:
        be.embed(invoke, {"model": COHERE, "input": ["a"] * 100 + ["bad"] + ["b"] * 99}, COHERE)
    assert str(cohere.value).startswith("the call of input[96] to input[191]: Bedrock ValidationException")
    with pytest.raises(ProviderError) as alone:  # one input: nothing to tell apart
        be.embed(invoke, {"model": TITAN, "input": "bad"}, TITAN)
    assert str(alone.value) == "Bedrock ValidationException: Too many input tokens."


@pytest.mark.parametrize(
    "body, param, needle",
    [
        ({"input": [[1, 2, 3]]}, "input", "token ids"),
        ({"input": [5, 6]}, "input", "token ids"),
        ({"input": "x", "dimensions": 1536}, "dimensions", "256, 512, 1024"),
        ({"input": "x", "user": "u-1"}, "user", "x-tokenomy-tags"),
        ({"input": "x", "input_type": "search_query"}, "input_type", "Cohere"),
    ],
)
def test_what_titan_cannot_take_is_refused_by_name(body, param, needle) -> None:
    wrong = be.refusal({"model": TITAN, **body}, TITAN)
    assert wrong is not None and wrong.param == param and needle in str(wrong)


def test_cohere_dimensions_and_unknown_models() -> None:
    assert be.refusal({"model": COHERE, "input": "x", "dimensions": 1024, "input_type": "clustering"}, COHERE) is None
    assert be.refusal({"model": COHERE, "input": "x", "dimensions": 512}, COHERE).param == "dimensions"
    assert be.refusal({"model": "x", "input": "x"}, "cohere.embed-v4:0") is None
    assert be.refusal({"model": "x", "input": "x"}, "amazon.titan-embed-text-v1").param == "model"
    arn = f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{TITAN}"
    assert be.embedding_model(arn) == be.MODELS[TITAN]
