"""Bedrock's InvokeModel with an embedding model's own body, as boto3 callers and LangChain's `BedrockEmbeddings`
send it: Amazon Titan Text Embeddings (`{"inputText", "dimensions", "normalize", "embeddingTypes"}`) and Cohere
Embed (`{"texts", "input_type", "truncate", "embedding_types", "output_dimension"}`).

The body is read into OpenAI's embeddings request and embedded as `/v1/embeddings` embeds one
(`embeddings_routes.embed_request`: the route's one embedding model, the budget reserved at the input's bound, the
route's retries, one ledger row per attempt tagged `operation=embeddings`, settlement at the real cost); the
vectors come back in the body's own shape with Bedrock's token-count header. The route names the model, as for
chat: a Titan body may be answered by any embedding model the route names, its `dimensions` checked against that
model. Every field is carried or refused by name: the gateway's vectors are normalized floats, never truncated
input, so `normalize: false`, other embedding types, truncation and image inputs are refused.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from tokenomy.gateway import metrics
from tokenomy.gateway.converse_routes import bedrock_error
from tokenomy.gateway.embeddings_request import parse_embeddings_request
from tokenomy.gateway.embeddings_routes import Embedded, Failure, embed_request
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.providers import bedrock_embeddings

TITAN_FIELDS = ("inputText", "dimensions", "normalize", "embeddingTypes")
COHERE_FIELDS = ("texts", "input_type", "truncate", "embedding_types", "output_dimension")
# What marks a Cohere Embed body: any of its input forms (texts; v4's images and interleaved inputs, refused by name).
COHERE_INPUTS = ("texts", "images", "inputs")
INPUTS = ("inputText", *COHERE_INPUTS)  # an embedding body's input fields, either family's
FLOAT_ONLY = ["float"]
# OpenAI's request fields, which a refusal names, by the field the body's caller sent.
CALLER_NAMES = {"titan": {"input": "inputText"}, "cohere": {"input": "texts", "dimensions": "output_dimension"}}


def is_embedding_body(body: Any) -> bool:
    """Whether an InvokeModel body is an embedding model's (Titan Text Embeddings or Cohere Embed) rather than a
    chat model's: Titan's text models also take `inputText`, but with `textGenerationConfig`."""
    return (
        isinstance(body, dict)
        and "messages" not in body
        and (("inputText" in body and "textGenerationConfig" not in body) or _is_cohere(body))
    )


def _is_cohere(body: dict[str, Any]) -> bool:
    return any(field in body for field in COHERE_INPUTS)


def _floats_only(body: dict[str, Any], field: str) -> bool:
    """Whether the body asks for float vectors (what the gateway returns) in `field`, or for no type at all."""
    kinds = body.get(field)
    if kinds is not None and kinds != FLOAT_ONLY:
        raise ValueError(f'{field}: the gateway returns float vectors; send ["float"] or leave it out')
    return kinds is not None


def _titan_request(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise ValueError("inputText: required, the text to embed")
    if body.get("normalize", True) is not True:
        raise ValueError("normalize: the gateway's vectors are normalized (as OpenAI's are); send true or leave it out")
    request: dict[str, Any] = {"model": model_id, "input": text}
    if "dimensions" in body:
        request["dimensions"] = body["dimensions"]
    return request


def _cohere_request(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts: required, a list of the texts to embed (none empty)")
    if "input_type" not in body:
        raise ValueError("input_type: required (search_document, search_query, classification or clustering)")
    if body.get("truncate", "NONE") != "NONE":
        raise ValueError("truncate: the gateway never truncates input (a text too long is an error); send NONE")
    request: dict[str, Any] = {"model": model_id, "input": texts, "input_type": body["input_type"]}
    if "output_dimension" in body:
        request["dimensions"] = body["output_dimension"]
    return request


def _checked(body: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in body:
        if field not in fields:
            raise ValueError(f"{field}: not carried by the gateway for this body (it takes {', '.join(fields)})")


def _answer(body: dict[str, Any], outcome: Embedded) -> dict[str, Any]:
    """The vectors in the body's own answer shape, as Bedrock answers it: Titan V2's always has `embeddingsByType`;
    Cohere's is by type when `embedding_types` is asked, and always from a model that answers so (Embed v4)."""
    vectors = [item["embedding"] for item in outcome.answer["data"]]
    if _is_cohere(body):
        model = bedrock_embeddings.embedding_model(outcome.model)
        by_type = _floats_only(body, "embedding_types") or (model is not None and model.by_type)
        return {
            "id": outcome.request_id,
            "embeddings": {"float": vectors} if by_type else vectors,
            "response_type": "embeddings_by_type" if by_type else "embeddings_floats",
            "texts": body["texts"],
        }
    return {"embedding": vectors[0], "inputTextTokenCount": outcome.used, "embeddingsByType": {"float": vectors[0]}}


def _named(message: str, body: dict[str, Any]) -> str:
    """A refusal naming one of OpenAI's fields (`dimensions: ...`, `input.1: ...`) named as the body's caller sent
    it (`output_dimension`, `texts.1`)."""
    for ours, theirs in CALLER_NAMES["cohere" if _is_cohere(body) else "titan"].items():
        if message.startswith(ours) and message[len(ours) : len(ours) + 1] in (":", ".", "["):
            return theirs + message[len(ours) :]
    return message


def _refused(failure: Failure, body: dict[str, Any]) -> JSONResponse:
    """An embeddings failure in Bedrock's error shape; an exhausted budget is not a throttle botocore would retry."""
    message = _named(failure.message, body)
    if failure.code == "budget_exceeded":
        return bedrock_error(400, message, failure.headers, code="ServiceQuotaExceededException")
    return bedrock_error(failure.status, message, failure.headers)


async def invoke(
    request: Request, key: Any, model_id: str, body: dict[str, Any], given: list[str], stream: bool, started: float
) -> Response:
    """Answer an InvokeModel request whose body is an embedding model's (`is_embedding_body`)."""
    try:
        if stream:
            raise ValueError("embedding models do not stream: call InvokeModel (/invoke), not the stream")
        if given:
            raise ValueError(f"{given[0]}: not carried by the gateway for an embedding model's body; remove it")
        if _is_cohere(body):
            _checked(body, COHERE_FIELDS)
            _floats_only(body, "embedding_types")
            openai_request = _cohere_request(body, model_id)
        else:
            _checked(body, TITAN_FIELDS)
            _floats_only(body, "embeddingTypes")
            openai_request = _titan_request(body, model_id)
        asked = parse_embeddings_request(openai_request)
    except (ValueError, RequestError) as exc:
        return metrics.done(bedrock_error(400, _named(str(exc), body)), model_id, started)
    outcome = await embed_request(request.app.state.gateway, request, key, asked)
    if isinstance(outcome, Failure):
        return metrics.done(_refused(outcome, body), outcome.label, started)
    headers = {
        "x-amzn-RequestId": outcome.request_id,
        "X-Amzn-Bedrock-Input-Token-Count": str(outcome.used),
        "X-Amzn-Bedrock-Invocation-Latency": str(round((time.perf_counter() - started) * 1000)),
    }
    answer = _answer(body, outcome)
    return metrics.done(JSONResponse(answer, headers=headers), model_id, started)
