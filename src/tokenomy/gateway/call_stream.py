"""A streamed answer, shared by the gateway's APIs: the call's pieces in the API's events, its settlement, and what a
stream whose call failed ends with (`settled_stream`, `stream_error`). Anthropic's, Bedrock's, Gemini's and the
Responses API's events are a `StreamFormat`'s (`call_streamed`); chat completions' own are its route's. Admission is
`calls.admit`'s, as for a whole answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.responses import Response

from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.calls import Admitted
from tokenomy.gateway.responses import StreamEnds, stopped_status
from tokenomy.gateway.settlement import call_cost, wind_up_stream
from tokenomy.messages import ChatRequest

log = logging.getLogger(__name__)


class StreamErrors(StreamEnds, Protocol):
    """How one API's stream answers a call that failed: before anything was sent, and after."""

    def refused(self, exc: TokenomyError) -> Response:
        """The answer to a call that failed before anything was sent: the error with its own status."""
        ...

    def failed(self, exc: TokenomyError) -> bytes:
        """The event that ends a stream the call failed in."""
        ...


class StreamFormat(StreamErrors, Protocol):
    """How one API streams an answer: its events for the pieces, and its ways to end in an error."""

    def start(self) -> list[bytes]:
        """The events before the first piece (a message-start event), sent once the call produced something."""
        ...

    def chunk(self, piece: StreamChunk) -> list[bytes]: ...

    def finish(self, response: ChatResponse) -> list[bytes]:
        """The events that end the answer (its stop reason, usage)."""
        ...


# What ends a stream's generator before its answer's end: the call's error, a bug, or its stop from outside.
STREAM_ENDINGS = (Exception, asyncio.CancelledError, GeneratorExit)


def stream_error(exc: BaseException, sent: bool, name: str, started: float, form: StreamErrors) -> bytes | Response:
    """What a stream whose call ended in `exc` (one of `STREAM_ENDINGS`) answers, counted in /metrics under `name`.
    A failed call: before anything was sent, its error Response with its own status (`form.refused`; the stream
    yields it after its wind-up), after, the event that ends the stream (`form.failed`, a 502). A bug, not the
    caller's fault: logged with its traceback, the stream ends with `form.crashed` (a 500). A stream stopped from
    outside is raised on: Starlette stops it when its caller leaves, cancelled in a wait before the first byte (a
    Retry-After, the route's limiter) or closed at an event after it, and so does the end of the shutdown grace;
    after an event went out, it is counted at `responses.stopped_status` (a 499 as for a whole call whose caller
    left; its API's unavailable status when the shutdown cut it). The ledger has what was sent: a cut stream's row is
    `cancelled`. Before anything went out, the edge counts it (`hygiene.EdgeHygiene`), as it answers then."""
    if isinstance(exc, TokenomyError):
        if not sent:
            refused = form.refused(exc)
            metrics.count(name, refused.status_code, started)
            return refused
        metrics.count(name, 502, started)
        return form.failed(exc)
    if isinstance(exc, Exception):
        log.error("the stream for %s failed", name, exc_info=exc)
        metrics.count(name, 500, started)
        return form.crashed(f"internal error ({type(exc).__name__}); see the gateway's log")
    if sent:
        metrics.count(name, stopped_status(), started)
    raise exc


@dataclass
class StreamProgress:
    """What a stream's events tell `settled_stream`, which ends the stream: whether any went out, and the answer."""

    sent: bool = False  # any event went out
    final: ChatResponse | None = None  # the call's answer, once its last piece came


# One API's events for a call's pieces, which note in the StreamProgress what went out and the answer.
StreamEvents = Callable[[AsyncGenerator[StreamChunk, None], StreamProgress], AsyncGenerator[bytes, None]]


async def settled_stream(
    gw,
    call: ChatRequest,
    admitted: Admitted,
    name: str,
    started: float,
    ends: StreamErrors,
    events: StreamEvents,
    done: bytes | None = None,
) -> AsyncIterator[bytes | Response]:
    """A streamed call in one API's `events`, for `responses.FirstChunkStream`: counted in /metrics under `name`, or
    ended as `stream_error` says (its first item then may be the error Response of a call that failed before anything
    was sent); `done` is the API's last event after any other end. Releases the call's slot and settles the
    reservation at what the call cost (see `wind_up_stream`)."""
    progress = StreamProgress()
    refused: Response | None = None
    crashed = False  # a bug ended the stream
    cost = call_cost(gw, admitted.budgets)
    pieces = gw.client.astream(call, policy=admitted.policy, cost=cost)
    sending = events(pieces, progress)
    try:
        async for event in sending:
            yield event
        assert progress.final is not None  # the events end with the answer's
        metrics.observe(progress.final, name)
        metrics.count(name, 200, started)
    except STREAM_ENDINGS as exc:
        ended = stream_error(exc, progress.sent, name, started, ends)  # (a stop from outside is raised on)
        crashed = not isinstance(exc, TokenomyError)
        if isinstance(ended, Response):
            refused = ended
        else:
            yield ended
    finally:
        await sending.aclose()  # stopped from outside at one of its events: closed now, not when collected
        gw.guard.slots.release()
        await wind_up_stream(gw, admitted.budgets, pieces, cost, progress.final, crashed)
    if refused is not None:
        yield refused
    elif done is not None:
        yield done


def call_streamed(
    gw, call: ChatRequest, admitted: Admitted, name: str, started: float, form: StreamFormat
) -> AsyncIterator[bytes | Response]:
    """A streamed answer in `form`'s events (see `settled_stream`)."""

    async def events(
        pieces: AsyncGenerator[StreamChunk, None], progress: StreamProgress
    ) -> AsyncGenerator[bytes, None]:
        async for piece in pieces:
            out = [] if progress.sent else form.start()
            if piece.response is not None:
                progress.final = piece.response
            else:
                out += form.chunk(piece)
            for event in out:
                progress.sent = True
                yield event
        final = progress.final
        assert final is not None
        if gw.journal is not None:
            await gw.journal.durable_async()  # journaled before the stream tells the client it is complete
        for event in form.finish(final):
            yield event

    return settled_stream(gw, call, admitted, name, started, form, events)
