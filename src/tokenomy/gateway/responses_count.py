"""`POST /v1/responses/input_tokens`: OpenAI's input-token count (`client.responses.input_tokens.count`) on the
gateway, for a Responses API request as `POST /v1/responses` reads it (`responses_ingress`).

`model` names a gateway route or model, as on `/v1/responses`; the count is the route's first model's
(`gateway.counting`): Anthropic, Bedrock, Gemini and the local model count; an OpenAI-format model (OpenAI,
Azure OpenAI, OpenAI-compatible servers) is refused with a 400 saying so, as the gateway calls them through Chat
Completions, which has no counting endpoint. No budget is reserved and no ledger row written; the key's rate limit
applies.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway.calls import OPENAI_ERROR_TYPES, gate, json_body, retry_after, upstream_status
from tokenomy.gateway.counting import cannot_count, count, counter_for
from tokenomy.gateway.fast_path import SENT_PATH
from tokenomy.gateway.metrics_counting import COUNTED_AS, count_in_metrics
from tokenomy.gateway.openai_ingress import issued_by_azure
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.path_aliases import azure_sent
from tokenomy.gateway.responses import error
from tokenomy.gateway.responses_ingress import caller_param, caller_path, request_from_responses
from tokenomy.providers.refusals import Unsupported

router = APIRouter()
# What OpenAI's input_tokens endpoint takes: the prompt and what shapes how the model reads it, not the answer's
# cap, sampling or storage. Its stored-conversation fields are let through to be refused as /v1/responses refuses
# them (the gateway keeps no responses: send the conversation in `input`), not as fields the endpoint lacks. `thinking`
# is the gateway's reasoning budget, which /v1/responses takes beside `reasoning`: a request it answers counts too.
COUNT_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "thinking",
        "truncation",
        "previous_response_id",
        "conversation",
    }
)
OPENAI_PROVIDERS = ("openai", "azure")  # the providers that take the Responses API's own fields


def _invalid(message: str, param: str | None = None) -> JSONResponse:
    return error(400, message, "invalid_request_error", param=param)


@router.post("/v1/responses/input_tokens")
async def count_input_tokens(request: Request) -> Response:
    """Count a Responses API request's input tokens: `{"object": "response.input_tokens", "input_tokens": N}`,
    counted in /metrics under the route (as a response is)."""
    return count_in_metrics(request.scope, await _count_input_tokens(request))


async def _count_input_tokens(request: Request) -> Response:
    gw = request.app.state.gateway
    try:
        body = await json_body(request)
    except ValueError as exc:
        return _invalid(f'the request body is not valid JSON ({exc}); send a JSON object such as {{"model": ..., '
                        '"input": ...}')  # fmt: skip
    key = await gw.authenticate_async(request.headers.get("authorization"))
    if isinstance(key, JSONResponse):
        return key
    if not isinstance(body, dict):
        return _invalid("the request body must be a JSON object")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        return _invalid("model: required (a string; GET /v1/models lists the names)", "model")
    route = gw.route_for(name)
    if route is None:
        message = f"The model `{name}` does not exist on this gateway; GET /v1/models lists the names you can use."
        return error(404, message, "invalid_request_error", "model_not_found", "model")
    request.scope[COUNTED_AS] = name
    unknown = sorted(key for key in set(body) - COUNT_FIELDS if body[key] is not None)  # a null: the SDK's unset
    if unknown:
        return _invalid(f"{unknown[0]}: not a field of input_tokens (it takes {', '.join(sorted(COUNT_FIELDS))})",
                        unknown[0])  # fmt: skip
    try:
        call, origins = request_from_responses(body)
        if azure_sent(request.scope.get(SENT_PATH)):
            issued_by_azure(call)  # its file ids are Azure's
        call = replace(call, max_tokens=None)
        counter = counter_for(gw, name, route, call, "OpenAI", OPENAI_PROVIDERS, partial(caller_param, origins))
        if isinstance(counter, Unsupported):
            where = caller_path(origins, counter)
            return error(400, counter.error_text(where), "invalid_request_error", "unsupported_content", where)
    except RequestError as exc:
        return _invalid(str(exc), exc.param)
    except (ValueError, TokenomyError) as exc:
        return _invalid(str(exc))
    refused = await gate(gw, key)  # counting is free: no budget reservation, no call slot
    if refused is not None:
        kind = OPENAI_ERROR_TYPES[refused.code]
        return error(refused.status, refused.message, kind, refused.code, headers=refused.headers)
    try:
        tokens = await count(counter)
    except ProviderError as exc:
        if cannot_count(exc):
            message = f"`{name}` counts with model `{counter.model}`: {exc}"
            return error(400, message, "invalid_request_error", "counting_unavailable", "model")
        if exc.refused is not None:  # the model cannot take a part of it (nothing was sent): the caller's place
            where = caller_path(origins, exc.refused)
            return error(400, exc.refused.error_text(where), "invalid_request_error", "unsupported_content", where)
        if exc.param is not None:  # the provider's mapping refused a field before any call: the caller's name
            where = caller_param(origins, exc.param)
            message = exc.named(lambda param: caller_param(origins, param))
            return error(400, message, "invalid_request_error", "unsupported_parameter", where)
        status = upstream_status(exc)
        message = f"upstream {exc.kind}: {exc}"
        return error(status, message, "upstream_error", exc.code or exc.kind, headers=retry_after(exc))
    return JSONResponse({"object": "response.input_tokens", "input_tokens": tokens})
