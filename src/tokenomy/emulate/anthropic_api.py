"""`tokenomy emulate anthropic`: a minimal Anthropic Messages API (`POST /v1/messages`) on the local model.

JSON responses and SSE streams use the documented shapes and event types (built by `anthropic_answer`);
errors use `{"type": "error", "error": {"type", "message"}}`. `cache_control` blocks are honoured
with the catalog's minimum prefix length and TTL, like the Bedrock emulator, and so is a top-level one (automatic
caching: a cache point on the last block).

Content blocks accepted (shapes validated): text, image (base64 or url source), document (base64 PDF, plain text, a
PDF's url, or content blocks), tool_use, tool_result (string or text/image content, is_error), thinking (its signature
must be one this emulator issued, as the API checks) and redacted_thinking; `tools`, `tool_choice` (auto/any/tool/none;
a call with tools bills the tool use system prompt as input, the catalog's count for the model and tool_choice, as the
API does) and `thinking` ({type: enabled, budget_tokens}, or adaptive; a display; a budget not below max_tokens only
with the interleaved-thinking beta in `anthropic-beta`, as the API takes it); `speed` (fast mode: usage.speed says
the speed served, in message_start when streamed; refused on a model without it). The local model is a text model
standing in for a vision model: an image or PDF reaches it as a placeholder line and counts at the fixed estimate in
`engine`. A forced tool (`any`: the first tool, `tool`: the named one) is answered with a tool_use block whose input the
local model generated under the tool's JSON-schema grammar. With thinking enabled the model first writes a short
reasoning (`engine.THINKING_TOKENS` at most), returned as a signed thinking block before the answer. Server tools: a web
search tool (`web_search_*`) is answered with a deterministic fixture (`anthropic_search`: one search, its result, a
cited text; usage counts the search), and an earlier answer's server_tool_use and *_tool_result blocks are taken back. A
document may come by URL or as content blocks, with a title, context and `citations`; a request with a cited document is
answered with a text block citing it (`anthropic_citations`: a deterministic fixture). The request is checked and
rendered by `anthropic_request.parse_messages`; `anthropic_batch.create_app` adds the Message Batches API
(`/v1/messages/batches`) to this app.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, StreamingResponse

from tokenomy.emulate.anthropic_answer import answer, message_body, message_content, message_usage, stream_events
from tokenomy.emulate.anthropic_blocks import AnthropicError, invalid
from tokenomy.emulate.anthropic_citations import first_citation
from tokenomy.emulate.anthropic_request import parse_messages
from tokenomy.emulate.engine import Block, Engine, InputTooLong, Prepared
from tokenomy.emulate.throttle import InjectedThrottle
from tokenomy.pricing.catalog import PriceEntry, default_catalog


def anthropic_entry(model: str) -> PriceEntry | None:
    """The catalog entry of a first-party Anthropic model id."""
    return next((e for e in default_catalog().entries() if e.provider == "anthropic" and e.model == model), None)


class AnthropicEmulator:
    """State behind the route: the local model, the prompt cache, the throttle RNG."""

    def __init__(
        self,
        throttle_rate: float = 0.0,
        seed: int | None = None,
        retry_after: float | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.throttle = InjectedThrottle(throttle_rate, seed)
        self.retry_after = retry_after
        self.engine = engine or Engine()

    @property
    def calls(self) -> int:
        return self.throttle.calls

    def count(self, body: Any) -> int:
        """A count_tokens request's input tokens: what `prepare` accounts for the same prompt, with no cache."""
        entry = self._entry(body)
        system, turns, _ = parse_messages(body, entry.cache_ttl_seconds or 300, counting=True)
        return self.engine.count_input(_with_tool_prompt(entry, body, system), turns)

    def _entry(self, body: Any) -> PriceEntry:
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise invalid("model: Field required")
        entry = anthropic_entry(model)
        if entry is None:
            raise AnthropicError("not_found_error", f"model: {model}")
        return entry

    def prepare(self, body: Any, betas: str | None = None) -> tuple[Prepared, str, int | None]:
        """Validate and render a request (`betas`: its anthropic-beta header): (prepared, model, thinking budget or
        None)."""
        entry = self._entry(body)
        model = body["model"]
        if self.throttle.hit():
            raise AnthropicError(
                "rate_limit_error",
                "This request would exceed the rate limit for your "
                "organization. Please reduce the prompt length or try later.",
            )
        system, turns, options = parse_messages(body, entry.cache_ttl_seconds or 300, betas=betas)
        limit = entry.max_output_tokens
        if limit is not None and options["max_tokens"] > limit:  # the API's own words (the catalog has each model's)
            raise invalid(
                f"max_tokens: {options['max_tokens']} > {limit}, which is the maximum allowed number of output tokens "
                f"for {model}"
            )
        _with_tool_prompt(entry, body, system)
        points = sum(b.cache_ttl is not None for b in system) + sum(
            b.cache_ttl is not None for t in turns for b in t.blocks
        )
        limit = entry.cache_max_checkpoints or 4
        if points > limit:
            raise invalid(f"A maximum of {limit} blocks with cache_control may be provided. Found {points}.")
        min_tokens = (entry.cache_min_tokens or 1024) if entry.has_cache else None
        try:
            prepared = self.engine.prepare(
                model,
                system,
                turns,
                min_tokens,
                False,
                options["max_tokens"],
                options["temperature"],
                options["stop"],
                sampling=options["sampling"],
            )
        except InputTooLong as exc:
            raise invalid(f"prompt is too long: {exc}") from None
        prepared.forced_tool = options["forced_tool"]
        prepared.web_search = options["web_search"]
        prepared.citation = first_citation(body["messages"])
        prepared.speed = options["speed"]
        return prepared, model, options["thinking_budget"]


def _with_tool_prompt(entry: PriceEntry, body: dict[str, Any], system: list[Block]) -> list[Block]:
    """`system` (tools first, as parse_messages renders them) billing the system prompt Anthropic adds to a call that
    sends tools, by tool_choice (the catalog's tool_prompt_tokens_auto / _any): fresh input the local model does not
    read, on the first tool's block, so answers and counts alike report it as the API does."""
    if body.get("tools"):
        choice = body.get("tool_choice")
        system[0].extra_tokens += entry.tool_prompt_tokens(choice.get("type") if isinstance(choice, dict) else None)
    return system


def _error(exc: AnthropicError, retry_after: float | None) -> JSONResponse:
    headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
    if retry_after is not None and exc.status in (429, 529):
        headers["retry-after"] = f"{retry_after:g}"
    return JSONResponse(
        {"type": "error", "error": {"type": exc.kind, "message": exc.message}}, status_code=exc.status, headers=headers
    )


async def _body(request: Request) -> Any:
    """The request's JSON body, or the error answer for a request without a key or with a body that is not JSON."""
    if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
        return _error(AnthropicError("authentication_error", "x-api-key header is required"), None)
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        return _error(invalid("request body is not valid JSON"), None)


def create_app(
    throttle_rate: float = 0.0, seed: int | None = None, retry_after: float | None = None, engine: Engine | None = None
) -> FastAPI:
    """The Messages API emulator as an ASGI app."""
    emulator = AnthropicEmulator(throttle_rate, seed, retry_after, engine)
    app = FastAPI(title="Tokenomy Anthropic emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emulator

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request):
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            tokens = await run_in_threadpool(emulator.count, body)
        except AnthropicError as exc:
            return _error(exc, emulator.retry_after)
        return JSONResponse({"input_tokens": tokens}, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    @app.post("/v1/messages")
    async def messages(request: Request):
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            prepared, model, budget = await run_in_threadpool(
                emulator.prepare, body, request.headers.get("anthropic-beta")
            )
        except AnthropicError as exc:
            return _error(exc, emulator.retry_after)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if body["max_tokens"] == 0:  # cache warming: the prompt was read (and cached); nothing is generated
            warmed = message_body(message_id, model, [], "max_tokens", None, message_usage(prepared, 0))
            return JSONResponse(warmed, headers=headers)
        if body.get("stream"):
            return StreamingResponse(
                stream_events(emulator.engine, prepared, model, message_id, budget),
                media_type="text/event-stream",
                headers=headers,
            )
        try:
            content, output_tokens, stop, searches, sequence = await run_in_threadpool(
                lambda: message_content(answer(emulator.engine, prepared, budget))
            )
        except AnthropicError as exc:
            return _error(exc, None)
        except Exception as exc:  # a local-model failure is the service's fault: the API's 500 shape
            return _error(AnthropicError("api_error", f"The model failed: {exc}"), None)
        usage = message_usage(prepared, output_tokens, searches)
        return JSONResponse(message_body(message_id, model, content, stop, sequence, usage), headers=headers)

    return app
