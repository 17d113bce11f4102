"""The provider interface: every backend turns a ChatRequest into a ChatResponse the same way."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import email.utils
import json
import math
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import (
    Block,
    ChatRequest,
    ChatResponse,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    StreamChunk,
    TextBlock,
    ToolCallDelta,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from tokenomy.providers.refusals import (
    ALL_BLOCKS,
    BLOCK_NAMES,
    Unsupported,
    anthropic_tool_fields_refusal,
    document_refusal,
    fields_to_carry,
    first_unaccepted,
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
# ProviderError.code of a provider that has no way to count tokens (`Provider.count_tokens`).
COUNTING_UNAVAILABLE = "counting_unavailable"


def arguments_text(call: ToolUseBlock) -> str:
    """A tool call's arguments as the model wrote them (or its input as JSON)."""
    return call.arguments if call.arguments is not None else json.dumps(call.input)


def estimated_prompt_tokens(request: ChatRequest) -> int:
    """A prompt's tokens when the server reports none: ~4 characters a token."""
    chars = len(request.system or "") + sum(len(m.text) for m in request.messages)
    return max(1, chars // 4)


def estimated_usage(request: ChatRequest, blocks: list[Block], raw: dict[str, Any]) -> Usage:
    """Usage for a whole answer sent without any (some compatible servers and proxies omit it): the prompt and the
    answer at ~4 characters a token, reasoning and tool calls' arguments included, rather than zero (an answer at $0,
    charged to no budget). The answer's `raw` says it was estimated."""
    raw["usage_source"] = "estimated"
    thought = sum(len(b.text) for b in blocks if isinstance(b, ReasoningBlock))
    said = sum(len(b.text) for b in blocks if isinstance(b, TextBlock))
    said += sum(len(arguments_text(b)) + len(b.name) for b in blocks if isinstance(b, ToolUseBlock))
    reasoning = -(-thought // 4)
    return Usage(
        input_tokens=estimated_prompt_tokens(request),
        output_tokens=-(-said // 4) + reasoning,
        reasoning_tokens=reasoning,
    )


# More tokens than any model reads or writes in one call (the largest context windows hold a few million): a count
# past it is garbage, which priced would charge a budget millions and which the ledger's columns may not even hold.
MAX_ANSWER_TOKENS = 2**31 - 1


def whole_count(value: Any) -> int | None:
    """`value`, a token count as an answer's JSON gave it, as an int; None when it is not a whole number (text, a
    fraction, a boolean, which Python's int() would read as 12 for 12.5 and 1 for true)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():  # 12.0: a whole number all the same
        return int(value)
    return None


def answered_count(counted: Any, provider: str, name: str) -> int:
    """The count a provider's token-counting endpoint answered (Anthropic's input_tokens, Bedrock's inputTokens,
    Gemini's totalTokens, named `name`): one missing, not a whole number, negative or past MAX_ANSWER_TOKENS is the
    provider's fault (a ProviderError, the gateway's 502), not a crash of the gateway's (a 500) nor a count to pass
    on to the caller."""
    whole = whole_count(counted)
    if whole is None or not 0 <= whole <= MAX_ANSWER_TOKENS:
        raise miscounted(counted, provider, name)
    return whole


def miscounted(counted: Any, provider: str, name: str) -> ProviderError:
    """The fault of a token count `answered_count` refuses, for a provider whose SDK refused it first."""
    return ProviderError(f"{provider} answered a token count no request can have: {name} {counted!r}")


def usage_count(value: Any, provider: str, name: str) -> int:
    """One count of an answer's usage (`name` as the provider spells it) as an int: none sent (None) is 0; one that
    is not a whole number (true, 100.5, text) is the provider's fault, a ProviderError (server_error, reached: it
    answered, and bills it), not 1 token, 100, or a ValueError's 500. `checked_counts` checks the counts' range."""
    if value is None:
        return 0
    whole = whole_count(value)
    if whole is None:
        raise ProviderError(f"{provider} answered with token counts no answer can have: {name} {value!r}", reached=True)
    return whole


def checked_counts(usage: Usage, provider: str) -> Usage:
    """`usage` as a provider's answer reported it; a ProviderError (server_error, reached: the provider answered,
    and bills it) when a count is negative: recorded so, the answer would be priced at $0 and charged nothing to its
    budget, and the gateway's metrics refuse it (a 500 for an answer already recorded). A count past
    MAX_ANSWER_TOKENS is refused alike: it was answered "ok", charged to the budget in the trillions of dollars, and
    its row set aside out of the ledger."""
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
    one_hour = usage.cache_write_1h_tokens
    every = (*counts, usage.reasoning_tokens, one_hour)
    if min(every) < 0 or max(every) > MAX_ANSWER_TOKENS or one_hour > usage.cache_write_tokens:
        raise ProviderError(f"{provider} answered with token counts no answer can have: {usage}", reached=True)
    return usage


def answer_broke_off(exc: BaseException) -> bool:
    """Whether an HTTP client's error, raised as `exc` or wrapped by it, is an answer whose body broke off after it
    began (httpx's "peer closed connection without sending complete message body"): the provider answered, and bills
    it (`ProviderError.reached`). A connection closed before any answer is not: the request may never have run."""
    return any("without sending complete message body" in str(e) for e in (exc, exc.__cause__) if e is not None)


def where_sent(exc: BaseException) -> str:
    """ " at <scheme://host[:port]>" of the request an HTTP client's error (httpx's, or an SDK's wrapping one) was for,
    else "": a "cannot reach" error then names the endpoint that was tried (a base_url or --endpoint-url), which
    httpx's own "All connection attempts failed" does not."""
    for error in (exc, exc.__cause__):
        try:
            url = error.request.url  # type: ignore[union-attr]  # httpx raises RuntimeError when it has none
        except (AttributeError, RuntimeError):
            continue
        return f" at {url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}"
    return ""


def read_timed_out(exc: BaseException) -> bool:
    """Whether a timeout was an HTTP client's read timeout (httpx's, urllib3's, botocore's; not connect, write or
    pool), raised as `exc` or wrapped by it: the request had been sent, and the provider, still working on it, bills
    it (`ProviderError.reached`)."""
    return any(type(e).__name__ in ("ReadTimeout", "ReadTimeoutError") for e in (exc, exc.__cause__))


def http_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, transport errors) of httpx and httpx2, the HTTP clients the SDKs read with (anthropic 2 and
    openai 3 moved to httpx2): a broken or stalled connection while reading a stream surfaces as one of these."""
    import importlib

    timeouts: list[type[Exception]] = []
    transport: list[type[Exception]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


def retry_after_seconds(headers: Any) -> float | None:
    """The wait an error answer asks for, from its headers: `retry-after-ms` (OpenAI's and Azure's), else
    `retry-after` as seconds or an HTTP date (RFC 9110); None when neither says something usable."""
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None and math.isfinite(float(millis)):
            return max(0.0, float(millis) / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110's dates are GMT; one without a zone is not one
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _block_refusal(content: list, accepted: tuple[type, ...], message: int) -> Unsupported | None:
    """The refusal of the first block (or tool result's part) of `content`, turn `message`, not of the `accepted`
    types."""
    found = first_unaccepted(content, accepted)
    if found is None:
        return None
    j, k, part = found
    if isinstance(part, ProviderBlock):  # by its API's type: "an anthropic web_search_tool_result block"
        kind = f"{part.api} {part.kind}"
    else:
        kind = BLOCK_NAMES.get(type(part), type(part).__name__)
    return Unsupported(f"{with_article(kind)} block ({{where}})", message, j, k)


class Provider:
    """Subclasses implement `chat` and `stream`; async variants run them in a worker thread.

    A provider declares what it can take (`accepts_blocks`, `accepts_extra`, `accepts_names`) so a
    request it cannot carry is refused before any call or budget reservation (`refusal`), naming
    the block or field, instead of being sent with parts silently missing.
    """

    name: str = "provider"  # the gen_ai.provider.name value: local, openai, aws.bedrock, anthropic
    accepts_blocks: tuple[type, ...] = ALL_BLOCKS
    accepts_extra: frozenset[str] | None = frozenset()  # pass-through fields it sends; None: any
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
    # A document's citations, context, URL and content source (refusals.DOCUMENT_FIELDS) it carries; others refused
    accepts_document_fields: frozenset[str] = frozenset()
    # The APIs whose file ids it reads as its own (DocumentBlock.file_api); another's is refused
    file_apis: frozenset[str] = frozenset()

    def default_cap(self, request: ChatRequest) -> int | None:
        """The output cap this provider sends with a request that sets none, as `chat` would send it; None when it
        sends none and the model may write up to its own limit. A budget reserves such a call at it
        (gateway.state); nothing sent depends on this."""
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
        if self.accepts_extra is not None:
            for key in fields_to_carry(request.extra):
                if key not in self.accepts_extra:
                    return Unsupported("field `{where}`", field=key)
        if request.user is not None and not (self.accepts_user or self.omits_user):
            why = "an end-user id (`{where}`; this API has no field for it: set `omit_end_user_id: true` on the model "
            return Unsupported(why + "to send such requests without it)", field="user")
        freeform = None if self.accepts_freeform else freeform_refusal(request)
        if freeform is not None:
            return freeform
        zero = None if self.accepts_zero_output else zero_output_refusal(request)
        if zero is not None:
            return zero
        if not self.accepts_1h_cache:
            return one_hour_cache_refusal(request, "this API has no 1-hour prompt cache")
        return None

    def check(self, request: ChatRequest) -> None:
        """Raise a client error (HTTP 400 at the gateway) if `refusal` names something."""
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
