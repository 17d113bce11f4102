"""Bedrock Runtime's InvokeModel and InvokeModelWithResponseStream on the gateway, for Claude's request bodies
(`POST /model/{modelId}/invoke` and `/invoke-with-response-stream`).

Many Bedrock applications call Claude through InvokeModel rather than Converse: boto3's `invoke_model` with
Anthropic's body (`anthropic_version: "bedrock-2023-05-31"`), the `anthropic` SDK's `AnthropicBedrock` client, and
the coding agents built on it. They move behind Tokenomy by pointing the endpoint at the gateway, with a gateway key
sent as Converse's route takes it (`converse_routes`: a bearer token, or the SigV4 access key id).

The body is a Messages API body without `model` and `stream` (the path names both), so it is read and answered with
the `/v1/messages` mapping (`providers.anthropic_inbound`, `providers.anthropic_answers`): tools, images,
documents, thinking and cache_control reach whichever model the route names, or are refused with a 400 naming the
field as the caller sent it. Fields
Tokenomy does not map ride to Claude as sent: into the body on Anthropic's API, into `additionalModelRequestFields`
on Bedrock (where InvokeModel's body would have put them). `anthropic_beta` becomes Anthropic's beta header on a
route to Anthropic's API, and is left out on a route to models without betas (OpenAI-format, Gemini, local).
InvokeModel's header parameters become the Converse fields of the same meaning on a route to Bedrock models (a
guardrail, request metadata, a project, a latency or service tier asked for) and are refused elsewhere. An embedding
model's body (Titan Text Embeddings, Cohere Embed) is embedded (`invoke_embeddings`); a text-completion body (Titan
Text's, Llama's, Mistral's) is sent as written to a route's Bedrock model of its family (`invoke_prompts`); a body of
another model family (Cohere Command's, Nova's) is refused with a pointer to Converse, which the gateway serves for
every model.

The answer is Claude's message with Bedrock's headers (`X-Amzn-Bedrock-Input-Token-Count`, ...); a stream is AWS
event-stream `chunk` frames, each holding one Messages API event as base64 JSON, the last (`message_stop`) with
`amazon-bedrock-invocationMetrics`. Errors are Bedrock's (`x-amzn-ErrorType`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.chat_response import ChatResponse
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import invoke_embeddings, invoke_prompts, metrics
from tokenomy.gateway.anthropic_errors import failure_parts
from tokenomy.gateway.anthropic_events import EventWriter as MessagesEventWriter
from tokenomy.gateway.anthropic_routes import uncarried_header
from tokenomy.gateway.call_stream import call_streamed
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    call_whole,
    json_body,
    leave_out_standard_only,
    refusal,
    request_meta,
    route_providers,
)
from tokenomy.gateway.converse_routes import STREAM_ERRORS, bedrock_error, bedrock_key, denied
from tokenomy.gateway.responses import FirstChunkStream, tokenomy_fields
from tokenomy.ids import new_id
from tokenomy.messages import ChatRequest
from tokenomy.providers import eventstream
from tokenomy.providers.anthropic_answers import message_body
from tokenomy.providers.anthropic_inbound import request_from_anthropic
from tokenomy.providers.anthropic_provider import BETA_HEADER
from tokenomy.providers.bedrock_prompt_bodies import cap_name
from tokenomy.providers.converse_answers import asked_fields

router = APIRouter()
# InvokeModelWithResponseStream's modelled exceptions: ConverseStream's, and a model timeout.
INVOKE_STREAM_ERRORS = {**STREAM_ERRORS, "ModelTimeoutException": "modelTimeoutException"}
BEDROCK_VERSION = "bedrock-2023-05-31"  # the `anthropic_version` of Bedrock's documentation
BEDROCK = "aws.bedrock"
# What marks a request body of another model family on InvokeModel, and which family it is (embedding models'
# bodies are served: `invoke_embeddings`).
OTHER_FAMILIES = {
    "inputText": "Amazon Titan",
    "prompt": "Llama, Mistral or another text-completion model",
    "message": "Cohere Command",
    "textGenerationConfig": "Amazon Titan",
    "schemaVersion": "Amazon Nova",
}
USE_CONVERSE = (
    "the gateway's InvokeModel takes Claude's Messages body (anthropic_version, messages, max_tokens); send this "
    "model's requests through Converse (`client.converse(...)`), which the gateway serves for every model"
)


def _header_fields(request: Request) -> tuple[dict[str, Any], list[str]]:
    """InvokeModel's header parameters as the Converse fields of the same meaning (`extra` keys the Bedrock mapping
    carries or refuses), and the names of those given (boto3's parameter names). Values that ask for nothing (the
    standard latency, the default tier, no trace) are left out."""
    headers = request.headers
    fields: dict[str, Any] = {}
    given: list[str] = []
    guardrail = headers.get("x-amzn-bedrock-guardrailidentifier")
    version = headers.get("x-amzn-bedrock-guardrailversion")
    trace = headers.get("x-amzn-bedrock-trace")
    if trace is not None and trace not in ("ENABLED", "DISABLED", "ENABLED_FULL"):
        raise ValueError("trace: expected ENABLED, DISABLED or ENABLED_FULL")
    if guardrail is not None or version is not None:
        if guardrail is None or version is None:
            raise ValueError("guardrailIdentifier and guardrailVersion: send both, or neither")
        config = {"guardrailIdentifier": guardrail, "guardrailVersion": version}
        if trace is not None:
            config["trace"] = trace.lower()
        fields["guardrailConfig"] = config
        given.append("guardrailIdentifier")
    # Without a guardrail there is nothing to trace: Bedrock ignores `trace` then, and so does the gateway.
    metadata = headers.get("x-amzn-bedrock-request-metadata")
    if metadata is not None:
        try:
            parsed = json.loads(metadata)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ValueError("requestMetadata: expected a JSON object of string values") from None
        fields["requestMetadata"] = parsed
        given.append("requestMetadata")
    project = headers.get("x-amzn-bedrock-projectidentifier")
    if project is not None and project != "default":
        fields["projectIdentifier"] = project
        given.append("projectIdentifier")
    latency = headers.get("x-amzn-bedrock-performanceconfig-latency")
    if latency is not None and latency != "standard":
        fields["performanceConfig"] = {"latency": latency}
        given.append("performanceConfigLatency")
    tier = headers.get("x-amzn-bedrock-service-tier")
    if tier is not None and tier != "default":
        fields["serviceTier"] = {"type": tier}
        given.append("serviceTier")
    return fields, given


def _messages_body(body: Any, model_id: str) -> dict[str, Any]:
    """The InvokeModel body as a Messages API request for `request_from_anthropic`; a ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object (Claude's Messages body)")
    if "messages" not in body:
        family = next((name for key, name in OTHER_FAMILIES.items() if key in body), None)
        if family is not None:
            raise ValueError(f"this is a request body for {family} models: {USE_CONVERSE}")
    version = body.get("anthropic_version")
    if not isinstance(version, str) or not version:
        # Bedrock's documented value; the anthropic SDK's Bedrock client sends its own API version instead.
        raise ValueError(f"anthropic_version: required, e.g. {BEDROCK_VERSION!r} (got {version!r}); {USE_CONVERSE}")
    for field in ("model", "stream"):
        if field in body:
            raise ValueError(
                f"{field}: not a field of InvokeModel's body; the path names the model (/model/{{modelId}}/invoke) "
                "and the stream (/invoke-with-response-stream); remove it"
            )
    beta = body.get("anthropic_beta")
    if beta is not None and (not isinstance(beta, list) or not all(isinstance(b, str) for b in beta)):
        raise ValueError("anthropic_beta: expected a list of strings")
    return {**{k: v for k, v in body.items() if k != "anthropic_version"}, "model": model_id}


class EventWriter(MessagesEventWriter):
    """The Messages API's stream events as InvokeModelWithResponseStream sends them: each one a `chunk` frame whose
    `bytes` is the event's JSON, and `message_stop` carrying Bedrock's invocation metrics."""

    def __init__(self, message_id: str, model: str, body: dict[str, Any], started: float) -> None:
        super().__init__(message_id, model, body)
        self.started = started
        self.first_byte_ms: int | None = None
        self.final: ChatResponse | None = None

    def _event(self, event: str, data: dict[str, Any]) -> bytes:
        if event == "message_stop" and self.final is not None:
            data = {**data, "amazon-bedrock-invocationMetrics": self._metrics(self.final)}
        elif self.first_byte_ms is None and event == "content_block_delta":
            self.first_byte_ms = round((time.perf_counter() - self.started) * 1000)
        payload = base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
        return eventstream.event("chunk", {"bytes": payload})

    def _metrics(self, response: ChatResponse) -> dict[str, int]:
        latency = round((time.perf_counter() - self.started) * 1000)
        out = {
            "inputTokenCount": response.usage.input_tokens,
            "outputTokenCount": response.usage.output_tokens,
            "invocationLatency": latency,
            "firstByteLatency": latency if self.first_byte_ms is None else self.first_byte_ms,
        }
        if response.usage.cache_read_tokens:
            out["cacheReadInputTokenCount"] = response.usage.cache_read_tokens
        if response.usage.cache_write_tokens:
            out["cacheWriteInputTokenCount"] = response.usage.cache_write_tokens
        return out

    def refused(self, exc: TokenomyError) -> Response:
        refused = _failure(exc, self.body)
        refused.headers["x-amzn-RequestId"] = self.message_id.removeprefix("msg_")  # the failed attempts' ledger id
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        code = _failure(exc, self.body).headers["x-amzn-ErrorType"]
        return eventstream.exception(INVOKE_STREAM_ERRORS.get(code, "modelStreamErrorException"), str(exc))

    def crashed(self, message: str) -> bytes:
        return eventstream.exception("internalServerException", message)

    def unavailable(self, message: str) -> bytes:
        return eventstream.exception("serviceUnavailableException", message)

    def finish(self, response: ChatResponse) -> list[bytes]:
        self.final = response
        return super().finish(response)


# Converse fields that only InvokeModel's header parameters become (`_header_fields`): a refusal of one names the
# parameter the caller set (boto3's name), not the Converse field it never wrote.
HEADER_PARAMS = {"performanceConfig": "performanceConfigLatency", "guardrailConfig": "guardrailIdentifier"}


def _failure(exc: TokenomyError, body: dict[str, Any]) -> JSONResponse:
    if isinstance(exc, ProviderError) and exc.refused is None and exc.param in HEADER_PARAMS:
        return bedrock_error(400, exc.named(lambda param: HEADER_PARAMS.get(param, param)))
    status, message, headers = failure_parts(exc, body)
    return bedrock_error(status, message, headers)


def _usage_headers(response: ChatResponse, request_id: str) -> dict[str, str]:
    """The headers Bedrock answers InvokeModel with: the token counts and the latency, boto3's RequestId."""
    usage = response.usage
    headers = {
        "x-amzn-RequestId": request_id,
        "X-Amzn-Bedrock-Input-Token-Count": str(usage.input_tokens),
        "X-Amzn-Bedrock-Output-Token-Count": str(usage.output_tokens),
        "X-Amzn-Bedrock-Invocation-Latency": str(round(response.latency_ms)),
    }
    if usage.cache_read_tokens:
        headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(usage.cache_read_tokens)
    if usage.cache_write_tokens:
        headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(usage.cache_write_tokens)
    return headers


def _guardrail_fields(response: ChatResponse, guarded: bool) -> dict[str, Any]:
    """What InvokeModel adds to Claude's answer when a guardrail was applied: its action, and its trace if asked."""
    if not guarded:
        return {}
    out: dict[str, Any] = {
        "amazon-bedrock-guardrailAction": "INTERVENED" if response.finish_reason == "content_filter" else "NONE"
    }
    trace = asked_fields(response).get("trace")
    if trace:
        out["amazon-bedrock-trace"] = trace
    return out


async def _invoke(request: Request, model_id: str, stream: bool) -> Response:
    gw = request.app.state.gateway
    started = time.perf_counter()
    route = gw.route_for(model_id)
    label = model_id if route is not None else "unknown"  # bounded metric labels, whatever clients send
    key = await bedrock_key(request)
    if isinstance(key, JSONResponse):
        return metrics.done(key, label, started)
    if route is None:
        message = f"modelId: `{model_id}` does not exist on this gateway; GET /v1/models lists the names you can use."
        return metrics.done(bedrock_error(404, message), label, started)
    try:
        uncarried = uncarried_header(request.headers)  # AnthropicBedrock sends workspace_id as /v1/messages' SDK does
        if uncarried is not None:
            raise ValueError(uncarried)
        header_fields, given = _header_fields(request)
        given_body = await json_body(request)
        family = invoke_prompts.prompt_family(gw, route, model_id, given_body)  # Titan Text's, Llama's, Mistral's
        if family is None and invoke_embeddings.is_embedding_body(given_body):  # Titan or Cohere embeddings: vectors
            return await invoke_embeddings.invoke(request, key, model_id, given_body, given, stream, started)
        if family is not None:
            return await _invoke_prompt(request, key, model_id, route, given_body, family, given, stream, started)
        body = _messages_body(given_body, model_id)
        call = request_from_anthropic(body)
        call.meta = request_meta(request, route, key, model_id)
        providers = route_providers(gw, route, model_id)
        leave_out_standard_only(call, providers)
        if given and providers != {BEDROCK}:
            raise ValueError(
                f"{given[0]}: the gateway carries InvokeModel's {given[0]} to Bedrock models only, and `{model_id}` "
                f"may reach {', '.join(sorted(providers - {BEDROCK}))} models; remove it"
            )
        beta = call.extra.get("anthropic_beta")
        if beta is not None and not providers & {BEDROCK, "anthropic"}:
            # No model on the route has Anthropic's betas: it answers without them, as /v1/messages answers such a
            # route without its anthropic-beta header (Claude Code on Bedrock sends betas on every request).
            call.extra.pop("anthropic_beta")
            beta = None
        if beta is not None and "anthropic" in providers and providers != {"anthropic"}:
            raise ValueError(
                f"anthropic_beta: `{model_id}` may reach Anthropic's API (a header there) and other models (a body "
                "field); send the betas on a route to one of them"
            )
        refused = refusal(gw, route, call, model_id, "Bedrock and Anthropic", (BEDROCK, "anthropic"))
        if refused is not None:
            return metrics.done(_failure(refused, body), model_id, started)
        if beta is not None and providers == {"anthropic"}:  # Anthropic's API takes the betas as a header
            call.extra.pop("anthropic_beta")
            call.extra[BETA_HEADER] = ",".join(beta)
        call.extra.update(header_fields)
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return metrics.done(bedrock_error(400, str(exc)), model_id, started)
    guarded = "guardrailConfig" in header_fields

    def shape(response: ChatResponse) -> dict[str, Any]:
        answer = message_body(response, model_id, f"msg_{call.meta.request_id}")
        answer.update(_guardrail_fields(response, guarded))
        answer["tokenomy"] = tokenomy_fields(response)
        return answer

    return await _call(request, key, model_id, route, call, body, started, shape, stream=stream)


async def _call(
    request: Request,
    key: Any,
    model_id: str,
    route: Any,
    call: ChatRequest,
    body: dict[str, Any],
    started: float,
    shape: Callable[[ChatResponse], dict[str, Any]],
    stream: bool = False,
    cap_field: str = "max_tokens",
) -> Response:
    """Admit a checked call and answer it: streamed as Claude's events in `chunk` frames, or whole as `shape` writes
    the answer, with Bedrock's headers (`cap_field`: the body's name of the output cap, for a refusal of it)."""
    gw = request.app.state.gateway
    call.model = route.model or model_id
    admitted = await admit(gw, request, model_id, route, key, call, cap_field=cap_field)
    if isinstance(admitted, Refusal):
        return metrics.done(denied(admitted), model_id, started)
    call.meta.request_id = new_id()  # boto3's ResponseMetadata.RequestId, the message id, and the call's ledger rows
    if stream:
        writer = EventWriter(f"msg_{call.meta.request_id}", model_id, body, started)
        headers = {"x-amzn-RequestId": call.meta.request_id, "X-Amzn-Bedrock-Content-Type": "application/json"}
        stream_out = call_streamed(gw, call, admitted, model_id, started, writer)
        return FirstChunkStream(
            stream_out, media_type="application/vnd.amazon.eventstream", headers=headers, ends=writer
        )
    response = await call_whole(gw, call, admitted, model_id, lambda exc: _failure(exc, body))
    if isinstance(response, Response):
        response.headers["x-amzn-RequestId"] = call.meta.request_id
        return metrics.done(response, model_id, started)
    headers = _usage_headers(response, call.meta.request_id)
    return metrics.done(JSONResponse(shape(response), headers=headers), model_id, started)


async def _invoke_prompt(
    request: Request,
    key: Any,
    model_id: str,
    route: Any,
    body: dict[str, Any],
    family: str,
    given: list[str],
    stream: bool,
    started: float,
) -> Response:
    """A text-completion body (`invoke_prompts`) sent as written to the route's Bedrock model of its family."""
    gw = request.app.state.gateway
    try:
        if stream:
            raise ValueError(invoke_prompts.NO_STREAM)
        if given:
            raise ValueError(f"{given[0]}: not carried by the gateway for a text-completion body; remove it")
        call = invoke_prompts.prompt_request(body, family)
        call.meta = request_meta(request, route, key, model_id)
        refused = refusal(gw, route, call, model_id, "Bedrock", (BEDROCK,))
        if refused is not None:
            return metrics.done(bedrock_error(400, str(refused)), model_id, started)
    except (ValueError, TokenomyError) as exc:
        return metrics.done(bedrock_error(400, str(exc)), model_id, started)
    return await _call(
        request, key, model_id, route, call, body, started, invoke_prompts.answer, cap_field=cap_name(family)
    )


@router.post("/model/{model_id:path}/invoke")
async def invoke_model(request: Request, model_id: str) -> Response:
    """Bedrock Runtime's InvokeModel with Claude's Messages body: Claude's message back."""
    return await _invoke(request, model_id, stream=False)


@router.post("/model/{model_id:path}/invoke-with-response-stream")
async def invoke_model_stream(request: Request, model_id: str) -> Response:
    """Bedrock Runtime's InvokeModelWithResponseStream: the Messages API's events in AWS event-stream chunks."""
    return await _invoke(request, model_id, stream=True)
