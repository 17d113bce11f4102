"""Claude on Vertex AI on the gateway: `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/
{model}:rawPredict` and `:streamRawPredict`, and `.../models/count-tokens:rawPredict`.

The `anthropic` SDK's `AnthropicVertex` client (and the coding agents built on it) moves behind Tokenomy by its base
URL, with the gateway key as its access token (sent as `Authorization: Bearer`):

    AnthropicVertex(base_url="http://gateway:8080/v1", region="us-east5", project_id="any", access_token=<gateway key>)

The body is a Messages API body with `anthropic_version` (Vertex's "vertex-2023-10-16", or the SDK's own API
version) and without `model`: the path names the model, which names the gateway route as `model` does on
`/v1/messages`. `stream` may stay in the body (the SDK leaves it there) but the path decides: `:streamRawPredict`
streams. The request is read and answered with the `/v1/messages` mapping (`anthropic_routes.answer_message`): tools,
images, documents, thinking and cache_control reach whichever model the route names, or are refused with a 400
naming the field as the caller sent it; a whole answer is Claude's message, a stream Anthropic's SSE events; errors
are Anthropic's JSON, which the SDK parses. The project and region in the path are the caller's business and are
not checked. `count-tokens:rawPredict` (the SDK's `messages.count_tokens`, whose body names the model) is
`/v1/messages/count_tokens`.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenomy.gateway import metrics
from tokenomy.gateway.anthropic_errors import anthropic_error
from tokenomy.gateway.anthropic_routes import answer_message, count_answer, message_caller
from tokenomy.gateway.calls import json_body
from tokenomy.gateway.metrics_counting import count_in_metrics

router = APIRouter()
VERTEX_VERSION = "vertex-2023-10-16"  # the `anthropic_version` of Vertex AI's documentation
VERSIONS = ("v1", "v1beta1")
METHODS = {"rawPredict": False, "streamRawPredict": True}  # whether the answer streams
COUNT_MODEL = "count-tokens"  # the model segment of Vertex's token count


def _messages_body(body: Any, model: str, stream: bool) -> dict[str, Any]:
    """The rawPredict body as a Messages API request naming route `model`; a ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object (Claude's Messages body)")
    version = body.get("anthropic_version")
    if not isinstance(version, str) or not version:
        raise ValueError(f"anthropic_version: required, e.g. {VERTEX_VERSION!r} (got {version!r})")
    named = body.get("model")
    if named is not None and named != model:
        raise ValueError(
            f"model: the path names the model (.../models/{model}:rawPredict) and the body names {named!r}; remove "
            "it from the body"
        )
    asked = body.get("stream")
    if asked is not None and not isinstance(asked, bool):
        raise ValueError("stream: Input should be a boolean")
    if asked is not None and asked != stream:
        method = "streamRawPredict" if asked else "rawPredict"
        raise ValueError(f"stream: {asked} asks for the other method; send it to .../models/{model}:{method}")
    out = {k: v for k, v in body.items() if k not in ("anthropic_version", "stream")}
    out["model"] = model
    return out


async def _predict(request: Request, version: str | None, target: str) -> Response:
    gw = request.app.state.gateway
    started = time.perf_counter()
    model, _, method = target.rpartition(":")
    if (version is not None and version not in VERSIONS) or method not in METHODS or not model:
        message = (
            f"{request.url.path}: of Claude on Vertex AI this gateway serves POST /v1/projects/{{project}}/locations/"
            "{region}/publishers/anthropic/models/{model}:rawPredict and :streamRawPredict, and "
            ".../models/count-tokens:rawPredict"
        )
        return metrics.done(anthropic_error(404, message), "unknown", started)
    try:
        body = await json_body(request)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        message = f"the request body is not valid JSON ({exc}); send a JSON object"
        return metrics.done(anthropic_error(400, message), "unknown", started)
    if model == COUNT_MODEL and method == "rawPredict":  # the body names the model, as on /v1/messages/count_tokens
        if not isinstance(body, dict):
            return count_in_metrics(request.scope, anthropic_error(400, "the request body must be a JSON object"))
        return await count_answer(request, {k: v for k, v in body.items() if k != "anthropic_version"})
    stream = METHODS[method]
    route = gw.route_for(model)
    label = model if route is not None else "unknown"  # bounded metric labels, whatever clients send
    try:
        messages = _messages_body(body, model, stream)
    except ValueError as exc:
        caller = await message_caller(request, {"model": model})  # a caller without a key hears of that first
        refused = caller if isinstance(caller, Response) else anthropic_error(400, str(exc))
        return metrics.done(refused, label, started)
    caller = await message_caller(request, messages)
    if isinstance(caller, Response):
        return metrics.done(caller, label, started)
    name, route, key = caller
    return await answer_message(request, messages, name, route, key, started, stream=stream)


@router.post("/{version}/projects/{project}/locations/{region}/publishers/anthropic/models/{target:path}")
async def vertex_predict(request: Request, version: str, project: str, region: str, target: str) -> Response:
    """Claude on Vertex AI: rawPredict (Claude's message) and streamRawPredict (Anthropic's SSE events). A path
    parameter: a route's name may hold a `/` (`team/claude`), which the SDK sends percent-encoded, decoded here."""
    return await _predict(request, version, target)


@router.post("/projects/{project}/locations/{region}/publishers/anthropic/models/{target:path}")
async def vertex_predict_unversioned(request: Request, project: str, region: str, target: str) -> Response:
    """The same, for a client whose base URL leaves out Vertex's `/v1`."""
    return await _predict(request, None, target)
