"""The Gemini API on the gateway (`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`), so an
application on the `google-genai` SDK moves behind Tokenomy by its base URL:

    genai.Client(api_key=<gateway key>, http_options={"base_url": "http://gateway:8080"})

`model` names a gateway route or model, as on the other APIs. The same path as `/v1/chat/completions`: the virtual
key (`x-goog-api-key`, or `Authorization: Bearer`), overload guard, rate limit, budget reservation, the one call path
(ledger, telemetry, retries, fallback, caching, routing), settlement. Requests and answers are mapped by
`providers.gemini_inbound`; streams are server-sent events of GenerateContentResponse chunks with `alt=sse` (the
SDK's), else one JSON array of them written as they come (the REST API's default); errors Google's
`{"error": {"code", "message", "status"}}`.

A streamed function call goes out whole, in the last chunk, as Gemini streams them: its arguments arrive in pieces
from other providers, and Gemini's format has no argument fragments. An answer without calls has text in its last
chunk (beside finishReason and usage), as Gemini's has: each text goes out as it comes but for its last character,
which the next chunk carries. google-genai's chats leave a streamed turn out of the history they send next when its
last chunk has no part (`chats._validate_response`): the conversation forgot each answer and the message it answered.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import NotOnThisLedger, ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.call_stream import call_streamed
from tokenomy.gateway.calls import (
    Refusal,
    admit,
    call_whole,
    gate,
    json_body,
    refusal,
    request_meta,
    retry_after,
    route_providers,
    takes_one_hour_cache,
    upstream_status,
)
from tokenomy.gateway.counting import cannot_count, count, counter_for
from tokenomy.gateway.fast_path import SENT_PATH
from tokenomy.gateway.gemini_auth import authenticate
from tokenomy.gateway.gemini_caches import use_cache
from tokenomy.gateway.gemini_errors import error_body, gemini_error
from tokenomy.gateway.responses import FirstChunkStream, unsent_redacted
from tokenomy.gateway.unserved import unserved
from tokenomy.ids import new_id
from tokenomy.messages import ChatRequest, ReasoningBlock, ToolUseBlock
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers.gemini_answers import (
    answered,
    candidate_said,
    finish_reason,
    parts_body,
    response_body,
    thinking_out,
    usage_body,
)
from tokenomy.providers.gemini_caller_places import caller_field, caller_param
from tokenomy.providers.gemini_fields import get
from tokenomy.providers.gemini_inbound import request_from_gemini, shows_thoughts
from tokenomy.providers.gemini_signatures import without_skip_signatures
from tokenomy.providers.refusals import Unsupported
from tokenomy.routing.router import routing_tag_refusal

router = APIRouter()
METHODS = ("generateContent", "streamGenerateContent")
GEMINI_PROVIDERS = ("gcp.gemini", "gcp.vertex_ai")  # the providers that take Gemini's own fields


def _gemini_only(gw: Any, route: Any, model: str) -> bool:
    """Whether every model the route may reach is a Gemini one (which takes Gemini's own fields as sent)."""
    return route_providers(gw, route, model) <= set(GEMINI_PROVIDERS)


def _provider_error(exc: TokenomyError, body: dict[str, Any]) -> JSONResponse:
    if not isinstance(exc, ProviderError):
        return gemini_error(400, str(exc))
    if exc.refused is not None:  # no model the call could use can take it (nothing was sent): the caller's place
        return gemini_error(400, exc.refused.error_text(caller_param(body, exc.refused.where)))
    if exc.param is not None:  # a mapping refused a field before any call: named as the caller sent it
        return gemini_error(400, exc.named(lambda param: caller_param(body, param)))
    return gemini_error(upstream_status(exc), f"upstream {exc.kind}: {exc}", retry_after(exc))


class ChunkWriter:
    """Turns StreamChunks into GenerateContentResponse chunks: text and thoughts as they come, each function call
    whole at the end (with a signature that rode on it)."""

    def __init__(self, model: str, response_id: str, body: Any, array: bool = False) -> None:
        self.model, self.response_id = model, response_id
        self.show_thoughts = shows_thoughts(body)
        # The chunks as one JSON array written as they come (`alt=json`, the REST API's default without `alt=sse`)
        # rather than server-sent events: what a caller that sends no `alt=sse` parses.
        self.array = array
        self.opened = False  # the array's `[` is sent
        self.body = body  # the request, to name a refused field as the caller sent it
        self.call_ids: dict[int, str] = {}  # a streamed call's index -> its id
        self.thinking = ""  # the thought streamed since the last signature
        self.pending: list[ReasoningBlock] = []  # signed reasoning for the next part (gemini_answers.thinking_out)
        self.carried: dict[int, list[ReasoningBlock]] = {}  # a streamed call's index -> the reasoning it carries
        self.redacted_sent = 0  # redacted reasoning blocks sent in their place (StreamChunk.redacted)
        self.held: list[dict[str, Any]] = []  # the latest text's last character, sent in the next chunk (`_sent`)
        self.calling = False  # a function call came: the last chunk has it, so nothing is held

    def start(self) -> list[bytes]:
        return []  # Gemini's stream has no opening event

    def refused(self, exc: TokenomyError) -> Response:
        refused = _provider_error(exc, self.body)
        refused.headers["x-request-id"] = self.response_id  # the failed attempts' id in the ledger
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        # the last item; the SDK raises an APIError for it
        return self._unheld() + self._item(json.loads(bytes(_provider_error(exc, self.body).body)), last=True)

    def crashed(self, message: str) -> bytes:
        return self._unheld() + self._item(error_body(500, message), last=True)

    def unavailable(self, message: str) -> bytes:
        return self._unheld() + self._item(error_body(503, message), last=True)

    def _unheld(self) -> bytes:
        """The held parts (`_sent`), before an error ends the stream: they were answered all the same."""
        held, self.held = self.held, []
        return self._chunk(held) if held else b""

    def _sent(self, parts: list[dict[str, Any]]) -> list[bytes]:
        """The chunk of `parts` after those held, but for the last character of the last one, held for the next chunk
        so the last chunk has the answer's last parts (see the module docstring) while the text goes out as it comes;
        once a function call came, which the last chunk has, nothing is held."""
        parts, self.held = _joined([*self.held, *parts]), []
        if parts and not self.calling:
            last = parts.pop()
            text = last["text"]  # each part of a piece is text (or a thought's), which `_joined` keeps so
            if len(text) < 2:
                self.held = [last]
            else:
                parts.append({**last, "text": text[:-1]})
                self.held = [{"text": text[-1], **({"thought": True} if last.get("thought") else {})}]
        return [self._chunk(parts)] if parts else []

    def _item(self, data: dict[str, Any], last: bool = False) -> bytes:
        """One chunk of the stream: a server-sent event, or the array's next element (its last closes it)."""
        text = json.dumps(data, separators=(",", ":"))
        if not self.array:
            return f"data: {text}\r\n\r\n".encode()
        opening = ",\r\n" if self.opened else "["
        self.opened = True
        return f"{opening}{text}{']' if last else ''}".encode()

    def _chunk(self, parts: list[dict[str, Any]], final: ChatResponse | None = None) -> bytes:
        # Every chunk has a content (the last one's with the answer's last parts: `_sent`): clients read
        # candidate.content on each chunk (LlamaIndex's streamed structured output failed on a last chunk without one).
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id}
        if final is not None:  # the last chunk: why the answer ended, and its usage
            candidate["finishReason"] = finish_reason(final)
            candidate.update(candidate_said(final))  # what Gemini's built-in tools found, as Gemini sends it last
            chunk["usageMetadata"] = usage_body(final)
            answered(chunk, final)
        return self._item(chunk, last=final is not None)

    def chunk(self, piece: StreamChunk) -> list[bytes]:
        parts: list[dict[str, Any]] = []
        if piece.redacted is not None:  # rides on the next part, where the model put it
            self.pending.append(ReasoningBlock(redacted=piece.redacted, signer=piece.signer))
            self.redacted_sent += 1
        riding = piece.signature is not None and not piece.reasoning and (piece.delta or piece.tool_call)
        if piece.reasoning and self.show_thoughts:  # shown as it comes; signed, it rides on the next part whole
            parts.append({"text": piece.reasoning, "thought": True})
        if piece.reasoning:
            self.thinking += piece.reasoning
        if piece.signature:
            self.pending.append(ReasoningBlock("" if riding else self.thinking, piece.signature, signer=piece.signer))
            self.thinking = "" if not riding else self.thinking
        if piece.delta:
            text: dict[str, Any] = {"text": piece.delta}
            if self.pending and piece.tool_call is None:
                text["thoughtSignature"], self.pending = thinking_out(self.pending), []
            parts.append(text)
        refused = piece.refusal  # an OpenAI-format model's: text here
        if isinstance(refused, str) and refused:
            parts.append({"text": refused})
        call = piece.tool_call
        if call is not None:  # held for the last chunk (see the module docstring)
            self.calling = True
            if call.id:
                self.call_ids[call.index] = call.id
            if self.pending:
                self.carried[call.index], self.pending = self.pending, []
        return self._sent(parts)

    def finish(self, response: ChatResponse) -> list[bytes]:
        # The answer's own blocks say what each call is (its id, name and parsed arguments); the fragments only
        # which ones streamed. Redacted reasoning the stream did not carry in its place comes here, whole, and
        # reasoning nothing followed at the end.
        unsent = unsent_redacted(response, self.redacted_sent)
        blocks = [b for b in response.content if isinstance(b, ToolUseBlock) or any(b is r for r in unsent)]
        carried = {self.call_ids.get(index): reasoning for index, reasoning in self.carried.items()}
        with_reasoning: list[Any] = []
        for block in blocks:
            if isinstance(block, ToolUseBlock) and block.id in carried:
                with_reasoning += carried[block.id]
            with_reasoning.append(block)
        with_reasoning += self.pending
        held, self.held = self.held, []
        return [self._chunk(_joined([*held, *parts_body(with_reasoning, show_thoughts=False)]), response)]


def _joined(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`parts` with each plain text part (a thought's too, no signature) joined to the one before it of its kind, so a
    chunk has one text part as Gemini's do (LlamaIndex reads the first part of each chunk)."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if out and set(part) | set(out[-1]) <= {"text", "thought"} and out[-1].get("thought") == part.get("thought"):
            out[-1] = {**out[-1], "text": out[-1]["text"] + part["text"]}
        else:
            out.append(part)
    return out


def labels(call: ChatRequest) -> dict[str, str]:
    """The request's `labels` (Vertex AI's billing labels: ADK sets `adk_agent_name` on each call), as the ledger
    row's tags: how the gateway carries them to every provider (Gemini models get them as sent as well)."""
    given = call.extra.get("labels")
    if given is None:
        return {}
    if not isinstance(given, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
        raise ValueError("labels: expected an object of string keys and values")
    refused = routing_tag_refusal(given)  # the row's tags: not one routing writes
    if refused is not None:
        raise ValueError(f"labels: {refused}")
    return dict(given)


def leave_out_standard_tier(call: ChatRequest) -> None:
    """For a route that may reach a provider that is not Gemini's: a `serviceTier` naming the standard tier is left
    out, since every provider serves it unasked (Gemini too: left out for it as well, for the fields go to every model
    of the route alike); a flex or priority tier, which no other API's tiers are mapped from, is refused by name.
    (Safety settings that turn every filter off are left out by each other provider's mapping:
    `refusals.GEMINI_ASKING_NOTHING`.)"""
    tier = call.extra.get("service_tier")
    if isinstance(tier, str) and tier.lower().removeprefix("service_tier_") in ("standard", "unspecified"):
        call.extra.pop("service_tier")


def _parse_target(target: str) -> tuple[str, str] | None:
    model, _, method = target.rpartition(":")
    if method not in METHODS or not model:
        return None
    return model.removeprefix("models/"), method


def _model_body(gw: Any, name: str) -> dict[str, Any]:
    """Gemini's Model for a route or model of the gateway. inputTokenLimit is the smallest context window of the
    models it may use, when the price catalog knows each of them; the catalog has no output limits."""
    model: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "tokenomy",
        "displayName": name,
        "supportedGenerationMethods": list(METHODS),
    }
    route = gw.route_for(name)
    windows: list[int | None] = []
    for each in (route.model, *route.fallback) if route is not None and route.model else ():
        spec = gw.client.spec_for(each)
        region = pricing_region(spec.region)
        try:
            windows.append(gw.catalog.lookup(spec.pricing_model, region).context_window)
        except TokenomyError:
            windows.append(None)
    if windows and None not in windows:
        model["inputTokenLimit"] = min(w for w in windows if w is not None)
    return model


async def _count(request: Request, model: str) -> Response:
    """countTokens (`models.count_tokens`): `{"totalTokens": N}` as the route's first model counts the prompt. The
    body is the Gemini API's (`contents`, or a whole `generateContentRequest`) or Vertex AI's (`contents` beside
    `systemInstruction` and `tools`). Nothing is generated, reserved against a budget or written to the ledger."""
    gw = request.app.state.gateway
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return key
    route = gw.route_for(model)
    if route is None:
        return gemini_error(404, f"model `{model}` does not exist on this gateway; GET /v1/models lists the names")
    body: Any = None
    try:
        body = await json_body(request)
        if isinstance(body, dict) and get(body, "generateContentRequest") is not None:
            if get(body, "contents") is not None:
                raise ValueError("generateContentRequest: send it or contents, not both")
            body = get(body, "generateContentRequest")
            body = {k: v for k, v in body.items() if k != "model"} if isinstance(body, dict) else body
        cached = await use_cache(request, key, model, body, partial(_gemini_only, gw, route, model))
        if isinstance(cached, JSONResponse):
            return cached
        body = cached.body if cached is not None else body
        call = request_from_gemini(model, body)
        labels(call)  # checked as a call checks them, though a count (not billed) carries them nowhere else
        # generationConfig's sampling shapes the answer, which a count makes none of: Vertex AI's SDK sends the
        # request's generationConfig with it, and a seed or penalty Claude has no place for refused the count
        call = replace(call, max_tokens=None, temperature=None, top_p=None, top_k=None, stop=[], seed=None)
        call = replace(call, presence_penalty=None, frequency_penalty=None)
        providers = route_providers(gw, route, model)
        if not providers <= set(GEMINI_PROVIDERS):
            call.messages = without_skip_signatures(call.messages)
            call.extra.pop("labels", None)  # labels a call's billing; a count is not billed
            leave_out_standard_tier(call)
        counter = counter_for(gw, model, route, call, "Gemini", GEMINI_PROVIDERS, partial(caller_field, body))
        if isinstance(counter, Unsupported):
            return gemini_error(400, counter.error_text(caller_param(body, counter.where)))
    except NotOnThisLedger:
        raise  # a cache on a ledger that cannot keep one: the operator's choice, the app's 501 as for its create
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return gemini_error(400, str(exc))
    refused = await gate(gw, key)  # counting is free: no budget reservation, no call slot
    if refused is not None:
        return gemini_error(refused.status, refused.message, refused.headers)
    try:
        tokens = await count(counter)
    except ProviderError as exc:
        if cannot_count(exc):
            return gemini_error(400, f"`{model}` counts with model `{counter.model}`: {exc}")
        return _provider_error(exc, body)
    return JSONResponse({"totalTokens": tokens})


async def _generate(request: Request, version: str, target: str) -> Response:
    gw = request.app.state.gateway
    started = time.perf_counter()
    if version in ("v1", "v1beta", "v1alpha") and target.endswith(":countTokens") and target != ":countTokens":
        model = target.removesuffix(":countTokens").removeprefix("models/")
        label = model if gw.route_for(model) is not None else "unknown"  # as its generateContent's are counted
        return metrics.done(await _count(request, model), label, started)
    parsed_target = _parse_target(target)
    if version not in ("v1", "v1beta", "v1alpha") or parsed_target is None:
        sent = request.scope.get(SENT_PATH, request.url.path)  # a Vertex path as the caller sent it
        message = f"{sent}: this gateway serves :generateContent, :streamGenerateContent and :countTokens"
        return metrics.done(gemini_error(404, message), "unknown", started)
    model, method = parsed_target
    route = gw.route_for(model)
    label = model if route is not None else "unknown"  # bounded metric labels, whatever clients send
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return metrics.done(key, label, started)
    if route is None:
        return metrics.done(
            gemini_error(404, f"model `{model}` does not exist on this gateway; GET /v1/models lists the names"),
            label,
            started,
        )
    alt = request.query_params.get("alt")
    if method == "streamGenerateContent" and alt not in (None, "json", "sse"):
        message = f"alt: the gateway streams a JSON array (alt=json, the default) or events (alt=sse), not {alt!r}"
        return metrics.done(gemini_error(400, message), model, started)
    body: Any = None
    try:
        body = await json_body(request)
        cached = await use_cache(request, key, model, body, partial(_gemini_only, gw, route, model))
        if isinstance(cached, JSONResponse):
            return metrics.done(cached, model, started)
        body = cached.body if cached is not None else body  # the cache's prefix in it: places are named in it
        call = request_from_gemini(route.model or model, body)
        if cached is not None:
            cached.mark(call, partial(takes_one_hour_cache, gw, route, model))
        call.meta = request_meta(request, route, key, model)
        call.meta.tags = {**labels(call), **call.meta.tags}  # the x-tokenomy-tags header's win
        providers = route_providers(gw, route, model)
        if not providers <= set(GEMINI_PROVIDERS):
            call.messages = without_skip_signatures(call.messages)
            call.extra.pop("labels", None)  # in the ledger row's tags, which is where they count for the others
            leave_out_standard_tier(call)
        refused = refusal(gw, route, call, model, "Gemini", GEMINI_PROVIDERS, partial(caller_field, body))
        if refused is not None:
            return metrics.done(_provider_error(refused, body), model, started)
    except NotOnThisLedger:
        raise  # a cache on a ledger that cannot keep one: the operator's choice, the app's 501 as for its create
    except (ValueError, TokenomyError) as exc:  # json.JSONDecodeError is a ValueError
        return metrics.done(gemini_error(400, str(exc)), model, started)
    admitted = await admit(gw, request, model, route, key, call, cap_field="generationConfig.maxOutputTokens")
    if isinstance(admitted, Refusal):
        return metrics.done(gemini_error(admitted.status, admitted.message, admitted.headers), model, started)
    call.meta.request_id = new_id()  # the answer's responseId, and the call's ledger rows
    headers = {"x-request-id": call.meta.request_id}
    if method == "streamGenerateContent":
        array = alt != "sse"
        writer = ChunkWriter(model, call.meta.request_id, body, array)
        stream = call_streamed(gw, call, admitted, model, started, writer)
        return FirstChunkStream(stream, "application/json" if array else "text/event-stream", headers, ends=writer)
    response = await call_whole(gw, call, admitted, model, lambda exc: _provider_error(exc, body))
    if isinstance(response, Response):
        response.headers.update(headers)
        return metrics.done(response, model, started)
    answer = response_body(response, model, call.meta.request_id, shows_thoughts(body))
    return metrics.done(JSONResponse(answer, headers=headers), model, started)


@router.post("/{version}/models/{target:path}")
async def generate_content(request: Request, version: str, target: str) -> Response:
    """Gemini's generateContent and streamGenerateContent (`models/{model}:generateContent`)."""
    return await _generate(request, version, target)


def from_gemini_sdk(request: Request) -> bool:
    """A GET /v1/models[/{model}] of google-genai (v1 is its default version; the path is OpenAI's too): it sends
    Google's key header (or `?key=`), which OpenAI's SDK never does."""
    return "x-goog-api-key" in request.headers or "key" in request.query_params


@router.get("/v1beta/models")
@router.get("/v1alpha/models")
async def gemini_models(request: Request) -> Response:
    """Gemini's models.list: the gateway's routes and models, one page."""
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return key
    gw = request.app.state.gateway
    return JSONResponse({"models": [_model_body(gw, name) for name in gw.served_names()]})


@router.get("/v1beta/models/{model:path}")
@router.get("/v1alpha/models/{model:path}")
async def gemini_model(request: Request, model: str) -> Response:
    """Gemini's models.get (`models/{model}`)."""
    key = await authenticate(request)
    if isinstance(key, JSONResponse):
        return key
    gw = request.app.state.gateway
    name = model.removeprefix("models/")
    if name not in gw.served_names():
        if name.rpartition(":")[2] in (*METHODS, "countTokens"):  # a method's path (`g:generateContent`): POST only
            return unserved(request.method, request.url.path, 405, {"Allow": "POST"}, request.scope.get(SENT_PATH))
        message = f"model `{name}` does not exist on this gateway; GET /v1beta/models lists the names"
        return gemini_error(404, message)
    return JSONResponse(_model_body(gw, name))
