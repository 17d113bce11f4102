"""The provider interface: every backend turns a ChatRequest into a ChatResponse the same way."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import ipaddress
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, DocumentBlock, ImageBlock, ProviderBlock, ToolResultBlock
from tokenomy.providers.block_refusals import (
    ALL_BLOCKS,
    BLOCK_NAMES,
    document_refusal,
    empty_message_refusal,
    first_unaccepted,
    provider_block_kind,
)
from tokenomy.providers.refusals import (
    Unsupported,
    anthropic_tool_fields_refusal,
    cache_points_refusal,
    fields_to_carry,
    freeform_refusal,
    one_hour_cache_refusal,
    raise_refusal,
    server_tools_refusal,
    with_article,
    zero_output_refusal,
)

# OpenAI's newer name for max_tokens, which Gemini's mapping reads from `extra` (a library caller may put it
# there); the gateway itself says which name its caller used in ChatRequest.max_tokens_name, not in `extra`.
NAMING_HINTS = frozenset({"max_completion_tokens"})

# Seconds an upstream may stay silent (to connect, before the answer starts, between two stream chunks) before an
# attempt fails as a timeout; a model's `timeout_s` changes it. Not a limit on a whole answer that keeps coming.
DEFAULT_TIMEOUT_S = 120.0
# A conservative output speed: the one the anthropic SDK assumes when it refuses a call that is not streamed whose
# max_tokens implies over 10 minutes (128,000 tokens an hour, its `_calculate_nonstreaming_timeout`). A model writes
# faster than that, so a cap that this speed fits within the timeout is an answer that cannot outlast it.
SECONDS_PER_OUTPUT_TOKEN = 3600 / 128_000
# ProviderError.code of a provider that has no way to count tokens (`Provider.count_tokens`).
COUNTING_UNAVAILABLE = "counting_unavailable"


def outlasts(max_tokens: int | None, timeout_s: float) -> bool:
    """Whether an answer of up to `max_tokens` could take longer than `timeout_s` to write, at the conservative speed
    above; False for no cap (the upstream's own default, not known here). An answer not streamed is silent until it
    is whole, and the timeout is the seconds of silence allowed: such a call is better streamed upstream and answered
    whole (`Provider.chat`), so the timeout applies between its chunks and a long answer that keeps coming is not cut
    (and billed, and retried)."""
    return max_tokens is not None and max_tokens * SECONDS_PER_OUTPUT_TOKEN > timeout_s


def url_server(url: str | None) -> tuple[str, int] | None:
    """(host, port) of the server at `url` (the scheme's port when it names none), as OpenTelemetry's
    server.address and server.port name it; None for no URL."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)


def is_loopback(url: str | None) -> bool:
    """Whether `url` names this machine (localhost or a loopback address): an emulator or test server, which the
    providers let run without the real API's credentials."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _block_refusal(content: list, accepted: tuple[type, ...], message: int) -> Unsupported | None:
    """The refusal of the first block (or tool result's part) of `content`, turn `message`, not of the `accepted`
    types."""
    found = first_unaccepted(content, accepted)
    if found is None:
        return None
    j, k, part = found
    if isinstance(part, ProviderBlock):  # "an anthropic web_search_tool_result block", "an audio part"
        kind = provider_block_kind(part)
    else:
        kind = BLOCK_NAMES.get(type(part), type(part).__name__) + " block"
    return Unsupported(f"{with_article(kind)} ({{where}})", message, j, k)


class Provider:
    """Subclasses implement `chat` and `stream`; async variants run them in a worker thread.

    A provider declares what it can take (`accepts_blocks`, `accepts_extra`, `accepts_names`) so a
    request it cannot carry is refused before any call or budget reservation (`refusal`), naming
    the block or field, instead of being sent with parts silently missing.
    """

    name: str = "provider"  # the gen_ai.provider.name value: local, openai, aws.bedrock, anthropic
    accepts_blocks: tuple[type, ...] = ALL_BLOCKS
    # The pass-through fields (`extra`) `refusal` lets through; None: any. A caller whose fields are the provider's
    # own API's asks `refusal` without them (Anthropic's: see AnthropicProvider.accepts_extra).
    accepts_extra: frozenset[str] | None = frozenset()
    accepts_names: bool = False  # OpenAI's per-message participant `name`
    accepts_user: bool = False  # an end-user id (ChatRequest.user) in a field of the provider's API
    # Its API has no such field, and its model's config says to send requests without the id (`omit_end_user_id`)
    omits_user: bool = False
    accepts_server_tools: bool = False  # tools its API runs itself (ToolSpec.server: Anthropic's web search)
    deployment_names: bool = False  # the model id names a deployment (Azure), not a model
    accepts_1h_cache: bool = False  # 1-hour cache points (Anthropic's API, Bedrock's Converse), else refused
    accepts_freeform: bool = False  # freeform tools and calls (OpenAI's custom tools: ToolSpec.freeform)
    accepts_openai_fields: bool = False  # an OpenAI-format message's own fields (Message.openai_fields)
    accepts_zero_output: bool = False  # max_tokens 0: a call that only writes the prompt cache (Anthropic's API)
    accepts_native_body: bool = False  # a Bedrock model family's own body, sent as written (ChatRequest.native_body)
    # A document's citations, context, URL and content source (block_refusals.DOCUMENT_FIELDS) it carries; others
    # refused
    accepts_document_fields: frozenset[str] = frozenset()
    # The APIs whose file ids it reads as its own (DocumentBlock.file_api); another's is refused
    file_apis: frozenset[str] = frozenset()
    # Its API refuses an empty text block: its mapping leaves them out (block_refusals.empty_text), and a message left
    # with no content is refused before any call; `takes_empty_final_assistant`: but for a last assistant message
    refuses_empty_text: bool = False
    takes_empty_final_assistant: bool = False

    # (host, port) of the endpoint it calls, found once when it is made (OpenTelemetry's server.address and
    # server.port on each attempt's span); None: it runs in this process (the local model).
    server: tuple[str, int] | None = None

    def reasoning_signer(self, model: str) -> str | None:
        """The family whose signatures `model` issues and checks (messages.CLAUDE_SIGNED...); None: unknown (an
        OpenAI-format server may front any model), its signed reasoning carried to any provider as it came."""
        return None

    def server_for(self, request: ChatRequest) -> tuple[str, int] | None:
        """The endpoint `request` is sent to (Bedrock's depends on the request's region)."""
        return self.server

    def default_cap(self, request: ChatRequest, most: int | None = None) -> int | None:
        """The output cap this provider sends with a request that sets none, given `most`, the model's maximum output
        (the catalog's, within what its context window leaves the prompt; None: not known); None when it sends none
        and the model may write up to its own limit. The client sends it (`CallPlanner.uncapped_cap`) and a budget
        reserves such a call at it (gateway.state), both through the one method."""
        return None

    def refusal(self, request: ChatRequest) -> Unsupported | None:
        """What of `request` this provider cannot send (e.g. an image block at messages[0].content[1]), or None."""
        accepted, names, fields = self.accepts_blocks, self.accepts_names, self.accepts_openai_fields
        # Whether a document was seen, whose fields only some APIs take, or an image by another API's file URI
        # (document_refusal looks at both)
        documents = False
        for i, message in enumerate(request.messages):  # (this runs on every turn of every request: one pass each)
            if message.name and not names:
                return Unsupported("field `{where}`", i, field="name")
            if message.openai_fields and not fields:
                key = next(iter(message.openai_fields))
                return Unsupported("an OpenAI-format server's field `{where}`", i, field=key)
            for block in message.content:
                if isinstance(block, accepted):
                    if not isinstance(block, ToolResultBlock):
                        # (spelled out, not a function: this runs for every block of every request)
                        documents = (
                            documents
                            or isinstance(block, DocumentBlock)
                            or (type(block) is ImageBlock and block.file_api is not None)
                        )
                        continue
                    for part in block.content:
                        if not isinstance(part, accepted):
                            break
                        documents = (
                            documents
                            or isinstance(part, DocumentBlock)
                            or (type(part) is ImageBlock and part.file_api is not None)
                        )
                    else:
                        continue
                # A block of a type not taken, or a tool result with a part not taken: named where it is.
                refused = _block_refusal(message.content, accepted, i)
                if refused is not None:
                    return refused
                documents = True  # the turn's other blocks were not looked at: document_refusal looks at them all
                break
        # Anthropic's API alone takes its server tools and its own tool fields
        if (
            request.tools
            and not self.accepts_server_tools
            and any(tool.server is not None or tool.anthropic for tool in request.tools)
        ):
            refused = server_tools_refusal(request) or anthropic_tool_fields_refusal(request)
            if refused is not None:
                return refused
        if documents:
            refused = document_refusal(request, self.accepts_document_fields, self.file_apis)
            if refused is not None:
                return refused
        if request.native_body is not None and not self.accepts_native_body:
            return Unsupported("a Bedrock model's own InvokeModel body (`{where}`)", field="body")
        extra = self.extra_refusal(request)
        if extra is not None:
            return extra
        if request.user is not None and not (self.accepts_user or self.omits_user):
            why = "an end-user id (`{where}`; this API has no field for it: set `omit_end_user_id: true` on the model "
            return Unsupported(why + "to send such requests without it)", field="user")
        freeform = None if self.accepts_freeform else freeform_refusal(request)
        if freeform is not None:
            return freeform
        zero = None if self.accepts_zero_output else zero_output_refusal(request)
        if zero is not None:
            return zero
        if self.refuses_empty_text:
            empty = empty_message_refusal(request, self.takes_empty_final_assistant)
            if empty is not None:
                return empty
        limit = self.cache_point_limit(request)
        crowded = None if limit is None else cache_points_refusal(request, limit)
        return crowded or self.one_hour_refusal(request)

    def cache_point_limit(self, request: ChatRequest) -> int | None:
        """How many cache points `request`'s model takes (one more is refused before any call), None: its API
        takes none, and caches without them (OpenAI-format models, Gemini, the local model's prefix cache)."""
        return None

    def extra_refusal(self, request: ChatRequest) -> Unsupported | None:
        """The first pass-through field (`extra`) this provider does not take (`accepts_extra`), or None."""
        if self.accepts_extra is not None:
            for key in fields_to_carry(request.extra):
                if key not in self.accepts_extra:
                    return Unsupported("field `{where}`", field=key)
        return None

    def mapping_refusal(self, request: ChatRequest, model: str) -> ProviderError | None:
        """The 400 its mapping would raise, before any call, for a request option its API has no place for (Claude's
        and Converse's seed, penalties, JSON mode, ...), `param` naming it, asked up front for the model id `model`
        so the gateway refuses a request no model of its route takes before any budget or ledger row, as it does
        what `refusal` finds; the mapping still raises it at call time. None: none (the default)."""
        return None

    def carries_cache_points(self, request: ChatRequest) -> bool:
        """Whether `request`'s cache points reach the model (where its catalog entry says it takes them, a route's
        caching places them: placed ones a provider would not send would be reported placed, yet cache nothing)."""
        return True

    def one_hour_refusal(self, request: ChatRequest) -> Unsupported | None:
        """`request`'s first 1-hour cache point when this provider's API has no 1-hour cache (`accepts_1h_cache`),
        refused for `no_one_hour_cache`'s reason; None otherwise. The rule's one place: `refusal` asks it, and so does
        the client's `cache_refusal` before any price, for what `refusal` is not asked: a caller's top-level
        `cache_control` (a pass-through field) and the point the gateway would add itself (`takes_one_hour_cache`)."""
        if self.accepts_1h_cache:
            return None
        return one_hour_cache_refusal(request, self.no_one_hour_cache(request))

    def no_one_hour_cache(self, request: ChatRequest) -> str:
        """Why a provider that does not accept 1-hour cache points refuses `request`'s."""
        return "this API has no 1-hour prompt cache"

    def check(self, request: ChatRequest) -> None:
        """Raise a client error (HTTP 400 at the gateway) if `refusal` names something; nothing to do for a request
        this provider's checks already cleared (`ChatRequest.cleared`: the gateway's, before any budget)."""
        cleared = request.cleared
        if cleared is not None and cleared[1] is self:
            return
        raise_refusal(request, self.name, self.refusal(request))

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Send the request and wait for the whole answer."""
        final = None
        for chunk in self.stream(request):
            if chunk.response is not None:
                final = chunk.response
        assert final is not None, "stream ended without a final response"
        return final

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:  # pragma: no cover - abstract
        """Yield text deltas, then one chunk carrying the complete ChatResponse."""
        raise NotImplementedError

    def count_tokens(self, request: ChatRequest) -> int:
        """The prompt's input tokens (system, messages, tools, images) as the provider itself counts them, from its
        counting API or its exact tokenizer; nothing is generated or billed. A provider with neither refuses: an
        estimate returned as a count would size a context wrongly with no sign of it."""
        raise ProviderError(
            f"counting tokens is not available for provider `{self.name}` (model `{request.model}`): its API has no "
            "token-counting endpoint; count with a model on Anthropic, Bedrock, Gemini or the local model",
            kind="client_error",
            status=400,
            code=COUNTING_UNAVAILABLE,
        )

    async def acount_tokens(self, request: ChatRequest) -> int:
        return await asyncio.to_thread(self.count_tokens, request)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.wrap_future(self._chat_future(request))

    def chat_thread(self, request: ChatRequest) -> concurrent.futures.Future[ChatResponse] | None:
        """`achat`'s call as a future its caller may stop waiting for: `chat` in a worker thread, which cannot be
        stopped, so a cancelled caller's provider still answers and bills, and the caller records that answer when
        the future is done. Call it on the event loop's thread.

        None for a provider whose `achat` is its own (natively async: cancelling it closes the connection)."""
        return self._chat_future(request) if type(self).achat is Provider.achat else None

    def _chat_future(self, request: ChatRequest) -> concurrent.futures.Future[ChatResponse]:
        """`chat` started in a worker thread of the running loop's default executor, as `asyncio.to_thread` runs it."""
        future: concurrent.futures.Future[ChatResponse] = concurrent.futures.Future()
        context = contextvars.copy_context()  # the caller's OpenTelemetry span, as to_thread would carry it

        def run() -> None:
            if not future.set_running_or_notify_cancel():  # cancelled while queued: nothing was sent
                return
            try:
                future.set_result(context.run(self.chat, request))
            except BaseException as exc:  # the caller (or whoever it left the attempt to) reads it from the future
                future.set_exception(exc)

        asyncio.get_running_loop().run_in_executor(None, run)
        return future

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Bridge the blocking stream to asyncio through a queue fed by a worker thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()
        stop = threading.Event()  # the consumer went away (a client that left): stop reading the provider

        def pump() -> None:
            chunks = self.stream(request)
            try:
                for chunk in chunks:
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # surfaced to the async consumer below
                if not stop.is_set():
                    loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                # Closing the stream closes its connection, so the provider stops generating (and billing) an answer
                # nobody reads; the thread read it to the end before.
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                if not stop.is_set():
                    loop.call_soon_threadsafe(queue.put_nowait, done)

        threading.Thread(target=pump, daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def close(self) -> None:
        """Release clients and connections."""


def delta_chunk(kind: str, value: Any) -> StreamChunk | None:
    """A stream assembler's `(kind, value)` delta as the chunk the caller sees (None: nothing to pass on)."""
    if kind == "text" and value:
        return StreamChunk(delta=value)
    if kind == "tool" and value[1]:
        return StreamChunk(tool_call=ToolCallDelta(value[0], arguments=value[1]))
    if kind == "reasoning" and value:
        return StreamChunk(reasoning=value)
    if kind == "signature" and value:
        return StreamChunk(signature=value)
    if kind == "redacted":
        return StreamChunk(redacted=value)
    return None
