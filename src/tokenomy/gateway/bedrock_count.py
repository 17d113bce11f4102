"""Bedrock Runtime's CountTokens on the gateway (`POST /model/{modelId}/count-tokens`, boto3's
`client.count_tokens(modelId=..., input=...)`): `{"inputTokens": N}` as the route's first model counts the prompt
(`gateway.counting`: no budget reserved, no ledger row, the key's rate limit applies). Keys and errors are
`converse_routes`' (Bedrock's shape, so botocore raises its modelled exceptions).

The prompt comes in either of CountTokens' forms:
- `input.converse`: a Converse request's messages, system, toolConfig and additionalModelRequestFields, mapped by
  `providers.converse_request` as on `/converse`;
- `input.invokeModel.body`: an InvokeModel body (a blob, base64 in botocore's JSON), read as Anthropic's Messages
  body for Claude models (`anthropic_version: "bedrock-2023-05-31"`, no `model`) and mapped by
  `providers.anthropic_inbound` as on `/v1/messages`. Another model family's body (Titan's `inputText`, Llama's
  `prompt`, ...) is refused naming its field: the converse form counts those prompts for any model; an embedding
  model's body (Titan's `inputText`, Cohere's `texts`) has no prompt to count, which its refusal says.
An invoke body's fields that shape only the answer (max_tokens, sampling, stop sequences) are taken and left out of
the count, as the converse form has no inferenceConfig to count; anything else is carried or refused by name, as
the caller spelled it (`input.converse.messages[0].content[1].image...`).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import invoke_embeddings
from tokenomy.gateway.calls import gate, json_body, retry_after, upstream_status
from tokenomy.gateway.converse_routes import bedrock_error, bedrock_key
from tokenomy.gateway.counting import Counter, cannot_count, count, counter_for
from tokenomy.gateway.hygiene import body_problem
from tokenomy.gateway.metrics_counting import COUNTED_AS, count_in_metrics
from tokenomy.ids import new_id
from tokenomy.messages import ChatRequest
from tokenomy.providers import anthropic_answers, anthropic_inbound, converse_request
from tokenomy.providers.anthropic_provider import BETA_HEADER
from tokenomy.providers.refusals import Unsupported

router = APIRouter()
CONVERSE = "input.converse"
INVOKE = "input.invokeModel.body"
# ConverseTokensRequest's members (botocore's model of CountTokens): what the model reads, no inferenceConfig.
CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")
ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Bedrock's Anthropic Messages body for Claude models (its InvokeModel request); `model` is the URL's modelId.
INVOKE_FIELDS = (
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "service_tier",
    "output_config",
)
# Fields of that body that shape the call, not what the model reads: accepted, as InvokeModel takes them, and left
# out of the count (as max_tokens and sampling are, by `_unshaped`).
NOT_READ = ("anthropic_version", "anthropic_beta", "metadata", "service_tier")


def _unshaped(call: ChatRequest) -> ChatRequest:
    """The request without what shapes only the answer, which a count has none of."""
    return replace(call, max_tokens=None, temperature=None, top_p=None, top_k=None, stop=[])


def _from_converse(model: str, given: Any) -> ChatRequest:
    if not isinstance(given, dict):
        raise ValueError(f"{CONVERSE}: expected an object")
    for field in given:
        if field not in CONVERSE_FIELDS:
            raise ValueError(
                f"{CONVERSE}.{field}: not a field of CountTokens' converse input (it takes "
                f"{', '.join(CONVERSE_FIELDS)}); remove it"
            )
    try:
        return _unshaped(converse_request.request_from_converse(model, given))
    except ValueError as exc:  # each names its field from the Converse body's root: named from the caller's
        raise ValueError(f"{CONVERSE}.{exc}") from None


def _invoke_body(given: Any) -> dict[str, Any]:
    """The InvokeModel body: base64 text (botocore's JSON for a blob) of a JSON object in Anthropic's shape."""
    if not isinstance(given, dict) or set(given) != {"body"}:
        raise ValueError("input.invokeModel: expected an object with body (the InvokeModel request body)")
    try:
        raw = binascii.a2b_base64(given["body"], strict_mode=True) if isinstance(given["body"], str) else None
    except binascii.Error:
        raw = None
    if raw is None:
        raise ValueError(f"{INVOKE}: expected the body's bytes, base64-encoded (as botocore sends a blob)")
    # A body inside the body: the edge's checks (hygiene) saw only its base64, so a lone surrogate, NaN or 1e400
    # in it reached the SDK's encoder, a 500.
    problem = body_problem(raw)
    if problem is not None:
        message, field = problem
        raise ValueError(f"{INVOKE}.{message}" if field else f"{INVOKE}: {message}")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValueError(f"{INVOKE}: expected a JSON object (the InvokeModel request body)")
    if invoke_embeddings.is_embedding_body(body):  # no chat prompt: the converse form would not count it either
        given = next(field for field in body if field in invoke_embeddings.INPUTS)
        raise ValueError(
            f"{INVOKE}.{given}: an embedding model's body (Titan Text Embeddings, Cohere Embed), which CountTokens "
            "does not count: an embedding call answers its input tokens itself (Titan's inputTextTokenCount, the "
            "x-amzn-bedrock-input-token-count header)"
        )
    for field in body:
        if field not in INVOKE_FIELDS:
            raise ValueError(
                f"{INVOKE}.{field}: not a field of Anthropic's Messages body, the one InvokeModel form the gateway "
                f"counts (for Claude models: {', '.join(INVOKE_FIELDS)}); send the prompt in the converse form "
                f"({CONVERSE}), which counts it for any model"
            )
    if "messages" not in body:
        raise ValueError(
            f"{INVOKE}.messages: Field required (the gateway counts Anthropic's Messages body); or send the prompt "
            f"in the converse form ({CONVERSE})"
        )
    version = body.get("anthropic_version")
    if version is not None and (not isinstance(version, str) or not version):
        # Bedrock documents ANTHROPIC_VERSION; the anthropic SDK's Bedrock client sends its own API version instead
        # (InvokeModel takes either, as `invoke_routes` does).
        raise ValueError(f"{INVOKE}.anthropic_version: expected a version such as {ANTHROPIC_VERSION!r}")
    beta = body.get("anthropic_beta")
    if beta is not None and (not isinstance(beta, list) or not all(isinstance(b, str) and b for b in beta)):
        raise ValueError(f"{INVOKE}.anthropic_beta: expected a list of beta names")
    return body


def _from_invoke(model: str, body: dict[str, Any]) -> ChatRequest:
    fields = {k: v for k, v in body.items() if k not in NOT_READ}
    try:
        # The mapping wants an answer's cap, which Bedrock's body has; a count needs none, so one may stand in.
        call = anthropic_inbound.request_from_anthropic({"max_tokens": 1, **fields, "model": model})
    except ValueError as exc:
        raise ValueError(f"{INVOKE}.{exc}") from None
    if body.get("anthropic_beta"):  # Anthropic's own field: `counter_for` lets it reach Anthropic and Bedrock only
        call.extra["anthropic_beta"] = body["anthropic_beta"]
    return _unshaped(call)


def _carry_beta(counter: Counter) -> None:
    """anthropic_beta where each provider takes it: Anthropic's API as its beta header; Bedrock's Converse in
    additionalModelRequestFields, which reach Claude's own body as the InvokeModel body would have them."""
    beta = counter.request.extra.get("anthropic_beta")
    if beta and counter.provider.name == "anthropic":
        extra = {k: v for k, v in counter.request.extra.items() if k != "anthropic_beta"}
        counter.request = replace(counter.request, extra={**extra, BETA_HEADER: ",".join(beta)})


@dataclass
class Form:
    """How a count names the caller's fields: a provider's refusal of a block or option (`placed`), a mapping's
    parameter (`named`), as the caller sent them in its input form."""

    placed: Callable[[Unsupported], str]
    named: Callable[[str], str]


def _converse_form(call: ChatRequest) -> Form:
    return Form(
        lambda refused: f"{CONVERSE}.{converse_request.caller_param(refused.where, call)}",
        lambda param: f"{CONVERSE}.{converse_request.caller_param(param, call)}",
    )


def _invoke_form(body: dict[str, Any]) -> Form:
    return Form(
        lambda refused: f"{INVOKE}.{anthropic_answers.caller_path(body, refused)}",
        lambda param: f"{INVOKE}.{anthropic_answers.caller_param(param)}",
    )


def _counter(gw, model_id: str, route, given: Any) -> tuple[Counter | Unsupported, Form]:
    """The counting model and the request as it would be sent it (or what it cannot take), from either input form;
    a ValueError names what is malformed or not carried."""
    if not isinstance(given, dict) or len(given) != 1 or next(iter(given)) not in ("converse", "invokeModel"):
        raise ValueError("input: expected exactly one of converse or invokeModel")
    model = route.model or model_id
    if "converse" in given:
        call = _from_converse(model, given["converse"])
        counter = counter_for(gw, model_id, route, call, "Bedrock", ("aws.bedrock",), lambda f: f"{CONVERSE}.{f}")
        return counter, _converse_form(call)
    body = _invoke_body(given["invokeModel"])
    call = _from_invoke(model, body)
    providers = ("anthropic", "aws.bedrock")
    counter = counter_for(gw, model_id, route, call, "Anthropic and Bedrock", providers, lambda f: f"{INVOKE}.{f}")
    if isinstance(counter, Counter):
        _carry_beta(counter)
    return counter, _invoke_form(body)


def _count_error(exc: ProviderError, form: Form) -> JSONResponse:
    if exc.refused is not None:  # what the model cannot take, found before any call: the caller's place
        return bedrock_error(400, exc.refused.error_text(form.placed(exc.refused)))
    if exc.param is not None:  # a provider's mapping refused a field before any call: named as the caller sent it
        return bedrock_error(400, exc.named(form.named))
    return bedrock_error(upstream_status(exc), f"upstream {exc.kind}: {exc}", retry_after(exc))


@router.post("/model/{model_id:path}/count-tokens")
async def count_tokens(request: Request, model_id: str) -> Response:
    """CountTokens: `{"inputTokens": N}`, the route's first model's count of the prompt in either input form,
    counted in /metrics under the route (as a Converse call is)."""
    return count_in_metrics(request.scope, await _count_tokens(request, model_id))


async def _count_tokens(request: Request, model_id: str) -> Response:
    gw = request.app.state.gateway
    key = await bedrock_key(request)
    if isinstance(key, JSONResponse):
        return key
    route = gw.route_for(model_id)
    if route is None:
        return bedrock_error(
            404, f"modelId: `{model_id}` does not exist on this gateway; GET /v1/models lists the names you can use."
        )
    request.scope[COUNTED_AS] = model_id
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        for field in body:
            if field != "input":
                raise ValueError(f"{field}: not a field of CountTokens (it takes modelId and input); remove it")
        counter, form = _counter(gw, model_id, route, body.get("input"))
        if isinstance(counter, Unsupported):
            return bedrock_error(400, counter.error_text(form.placed(counter)))
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return bedrock_error(400, str(exc))
    admitted = await gate(gw, key)  # counting is free: no budget reservation, no call slot
    if admitted is not None:
        return bedrock_error(admitted.status, admitted.message, admitted.headers)
    try:
        tokens = await count(counter)
    except ProviderError as exc:
        if cannot_count(exc):
            return bedrock_error(400, f"`{model_id}` counts with model `{counter.model}`: {exc}")
        return _count_error(exc, form)
    return JSONResponse({"inputTokens": tokens}, headers={"x-amzn-RequestId": new_id()})
