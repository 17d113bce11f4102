"""`POST /v1/responses`: OpenAI's Responses API on the gateway, for applications on `client.responses.create` (the
OpenAI Agents SDK among them) to move behind Tokenomy by their base URL, as chat-completions applications do.

The same path as `/v1/chat/completions`: the virtual key (`Authorization: Bearer`), the route named by `model`,
overload guard, rate limit, budget reservation, the one call path (ledger, telemetry, retries, fallback, caching,
routing), settlement. `responses_ingress` maps the request; the answer is a Response object (`responses_answer`)
whose output items are the answer's blocks in order: `reasoning` (the text, and in `encrypted_content` the signature
or redacted data that must come back with it), one `message` with the text, and a `function_call` per tool call (a
`custom_tool_call`, its raw `input`, per call of a freeform tool). Streams are the Responses API's semantic events
(response.created, output_item.added, content_part.added, output_text.delta, function_call_arguments.delta,
custom_tool_call_input.delta, reasoning_summary_text.delta, the matching .done events, response.completed); a
reasoning item goes out once whole, announced with its signature as OpenAI announces one with its encrypted content,
and with its text, which no delta then repeats (reasoning_text.done). The gateway keeps no responses: each request
carries its whole conversation (`store: false`, as stateless clients send).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenomy.chat_response import ChatResponse, StreamChunk
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import metrics
from tokenomy.gateway.call_stream import call_streamed
from tokenomy.gateway.calls import (
    OPENAI_ERROR_TYPES,
    Refusal,
    admit,
    call_whole,
    json_body,
    request_meta,
    retry_after,
    upstream_status,
)
from tokenomy.gateway.fast_path import SENT_PATH
from tokenomy.gateway.openai_ingress import issued_by_azure
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.gateway.path_aliases import azure_sent
from tokenomy.gateway.responses import FirstChunkStream, dumps, error, unsent_redacted
from tokenomy.gateway.responses_answer import (
    call_item,
    custom_call_item,
    ending,
    finished,
    flat_annotations,
    message_item,
    output_items,
    reasoning_item,
    response_body,
    text_part,
    wants_summary,
)
from tokenomy.gateway.responses_ingress import SIGNED, Origin, caller_param, caller_path
from tokenomy.gateway.responses_ingress import request_from_responses as read_request
from tokenomy.ids import new_id
from tokenomy.messages import ReasoningBlock
from tokenomy.providers.reasoning_signers import sealed

router = APIRouter()


def _failure(exc: TokenomyError, origins: list[Origin]) -> JSONResponse:
    if isinstance(exc, ProviderError) and exc.refused is not None:  # nothing was sent: the caller's place
        where = caller_path(origins, exc.refused)
        return error(400, exc.refused.error_text(where), "invalid_request_error", "unsupported_content", where)
    if isinstance(exc, ProviderError) and exc.param is not None:  # the mapping refused a field before any call
        where = caller_param(origins, exc.param)
        message = exc.named(lambda param: caller_param(origins, param))
        return error(400, message, "invalid_request_error", "unsupported_parameter", param=where)
    if isinstance(exc, ProviderError):
        return error(
            upstream_status(exc),
            f"upstream {exc.kind}: {exc}",
            "upstream_error",
            exc.code or exc.kind,
            headers=retry_after(exc),
        )
    return error(400, str(exc), "invalid_request_error")


# -- the stream --------------------------------------------------------------------------------------------------
class EventWriter:
    """StreamChunks as the Responses API's events. A message or reasoning item closes when the next item opens;
    function calls close at the end (a provider may interleave their argument fragments)."""

    def __init__(self, body: dict[str, Any], name: str, response_id: str, origins: list[Origin]) -> None:
        self.body, self.origins = body, origins
        self.answer = response_body(body, name, response_id)
        self.ids = response_id.removeprefix("resp")
        self.summary = wants_summary(body)
        self.sequence = 0
        self.items: list[dict[str, Any]] = []  # every item sent, as it stands
        self.open: dict[str, Any] | None = None  # the message or reasoning item still receiving deltas
        self.calls: dict[int, dict[str, Any]] = {}  # a tool call's index -> its item
        self.redacted_sent = 0
        self.started = False  # response.created went out
        self.cut: dict[str, Any] | None = None  # the item an answer cut short ended in

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}  # from 0, as OpenAI numbers them
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"

    def _index(self, item: dict[str, Any]) -> int:
        return next(i for i, each in enumerate(self.items) if each is item)

    def _add(self, item: dict[str, Any], shown: dict[str, Any] | None = None) -> list[bytes]:
        """`item` in the output from now on; announced as `shown` (the item as it stands, by default)."""
        self.items.append(item)
        return [self._event("response.output_item.added", output_index=len(self.items) - 1, item=shown or dict(item))]

    def _done(self, item: dict[str, Any]) -> list[bytes]:
        index, item_id = self._index(item), item["id"]
        out = []
        if item["type"] == "message":
            for k, part in enumerate(item["content"]):
                kind, key = ("output_text", "text") if part["type"] == "output_text" else ("refusal", "refusal")
                common = {"item_id": item_id, "output_index": index, "content_index": k}
                done = {key: part[key], **({"logprobs": part["logprobs"]} if kind == "output_text" else {})}
                out.append(self._event(f"response.{kind}.done", **common, **done))
                out.append(self._event("response.content_part.done", **common, part=part))
        elif item["type"] == "custom_tool_call":
            out.append(
                self._event(
                    "response.custom_tool_call_input.done", item_id=item_id, output_index=index, input=item["input"]
                )
            )
        elif item["type"] == "function_call":
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        elif item["content"]:  # reasoning with text
            out.append(
                self._event(
                    "response.reasoning_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=item["content"][0]["text"],
                )
            )
        if item["type"] != "custom_tool_call":  # which has no status
            item["status"] = "incomplete" if item is self.cut else "completed"
        return [*out, self._event("response.output_item.done", output_index=index, item=item)]

    def _close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        return self._release(item) if item["type"] == "reasoning" else self._done(item)

    def _release(self, item: dict[str, Any]) -> list[bytes]:
        """A reasoning item, sent once whole: its signature (encrypted_content) comes at its end, and OpenAI announces
        a reasoning item with it, so clients keep the item as output_item.added has it (LangChain's stream does) and
        send it back so. Added with its text and signature (no text deltas then: a client adding them to the item
        announced would have its text twice), its summary (as OpenAI streams one, for a caller who asked), its text
        done, done."""
        shown = {**item, "status": "in_progress", "summary": []}
        out, where = self._add(item, shown), {"item_id": item["id"], "output_index": len(self.items) - 1}
        for k, part in enumerate(item["summary"]):
            common = {**where, "summary_index": k}
            out.append(self._event("response.reasoning_summary_part.added", **common, part={**part, "text": ""}))
            out.append(self._event("response.reasoning_summary_text.delta", **common, delta=part["text"]))
            out.append(self._event("response.reasoning_summary_text.done", **common, text=part["text"]))
            out.append(self._event("response.reasoning_summary_part.done", **common, part=part))
        return [*out, *self._done(item)]

    def _reasoning(self, block: ReasoningBlock) -> list[bytes]:
        """A whole reasoning item (redacted, or a signature riding on a text or tool-call piece)."""
        out = self._close()
        return [*out, *self._release(reasoning_item(f"rs{self.ids}_{len(self.items)}", block, self.summary))]

    def _text(self, kind: str, key: str, text: str, logprobs: list[Any]) -> list[bytes]:
        """A delta of the open message's last part when it is `kind` (output_text or refusal), else of a new part
        (in a new message when none is open)."""
        out: list[bytes] = []
        message = self.open
        if message is None or message["type"] != "message":
            out += self._close()
            message = self.open = message_item(f"msg{self.ids}_{len(self.items)}", [], "in_progress")
            out += self._add(message)
        index, parts = self._index(message), message["content"]
        if not parts or parts[-1]["type"] != kind:
            part = text_part("") if kind == "output_text" else {"type": "refusal", "refusal": ""}
            parts.append(part)
            out.append(
                self._event(
                    "response.content_part.added", item_id=message["id"], output_index=index,
                    content_index=len(parts) - 1, part=dict(part),
                )
            )  # fmt: skip
        parts[-1][key] += text
        fields = {"logprobs": logprobs} if kind == "output_text" else {}
        if logprobs:  # the part's, whole, as a whole answer gives them
            parts[-1]["logprobs"] += logprobs
        where = {"item_id": message["id"], "output_index": index, "content_index": len(parts) - 1}
        return [*out, self._event(f"response.{kind}.delta", **where, delta=text, **fields)]

    def _cited(self, annotations: list[dict[str, Any]]) -> list[bytes]:
        """Annotations of the open message's text (a text part is opened for them when none is)."""
        parts = self.open["content"] if self.open is not None and self.open["type"] == "message" else []
        out = [] if parts and parts[-1]["type"] == "output_text" else self._text("output_text", "text", "", [])
        message = self.open
        assert message is not None
        part = message["content"][-1]
        where = {
            "item_id": message["id"],
            "output_index": self._index(message),
            "content_index": len(message["content"]) - 1,
        }
        for annotation in annotations:
            part["annotations"].append(annotation)
            index = len(part["annotations"]) - 1
            out.append(
                self._event(
                    "response.output_text.annotation.added", **where, annotation_index=index, annotation=annotation
                )
            )
        return out

    def start(self) -> list[bytes]:
        self.started = True
        return [
            self._event("response.created", response=self.answer),
            self._event("response.in_progress", response=self.answer),
        ]

    def chunk(self, piece: StreamChunk) -> list[bytes]:
        out: list[bytes] = []
        if piece.redacted is not None:  # whole, where the model put it
            out += self._reasoning(ReasoningBlock(redacted=piece.redacted, signer=piece.signer))
            self.redacted_sent += 1
        riding = piece.signature is not None and not piece.reasoning and (piece.delta or piece.tool_call)
        if riding:  # Gemini's signature on the part it came with: a reasoning item of its own before that part
            out += self._reasoning(ReasoningBlock("", piece.signature, signer=piece.signer))
        elif piece.reasoning or piece.signature:
            if self.open is None or self.open["type"] != "reasoning":
                out += self._close()  # held back until it is whole (_release): it is no output item yet
                self.open = reasoning_item(f"rs{self.ids}_{len(self.items)}", ReasoningBlock(), self.summary)
            item = self.open
            if piece.reasoning:
                if not item["content"]:
                    item["content"].append({"type": "reasoning_text", "text": ""})
                item["content"][0]["text"] += piece.reasoning
                if self.summary:
                    item["summary"] = [{"type": "summary_text", "text": item["content"][0]["text"]}]
            if piece.signature:
                item["encrypted_content"] = SIGNED + sealed(piece.signature, piece.signer, None)
        extra = piece.extra or {}
        if piece.delta:
            out += self._text("output_text", "text", piece.delta, (extra.get("logprobs") or {}).get("content") or [])
        refused = piece.refusal  # an OpenAI-format model's refusal
        if isinstance(refused, str) and refused:
            out += self._text("refusal", "refusal", refused, [])
        cited = (extra.get("delta") or {}).get("annotations")  # a search model's citations, as a whole answer's
        if isinstance(cited, list) and cited:
            out += self._cited(flat_annotations(cited))
        call = piece.tool_call
        if call is not None:
            if call.index not in self.calls:
                out += self._close()
                number = f"{self.ids}_{len(self.items)}"
                if call.freeform:
                    fresh = custom_call_item("ctc" + number, call.id or "", call.name or "", "")
                else:
                    fresh = call_item("fc" + number, call.id or "", call.name or "", "", "in_progress")
                self.calls[call.index] = fresh
                out += self._add(fresh)
            item = self.calls[call.index]
            if call.arguments:  # a custom call's raw text is its `input`, a function call's JSON its `arguments`
                custom = item["type"] == "custom_tool_call"
                item["input" if custom else "arguments"] += call.arguments
                event = "response.custom_tool_call_input.delta" if custom else "response.function_call_arguments.delta"
                out.append(self._event(event, item_id=item["id"], output_index=self._index(item), delta=call.arguments))
        return out

    def finish(self, response: ChatResponse) -> list[bytes]:
        if ending(response)[0] == "incomplete":  # the item the answer ended in: a reasoning item held back, or the last
            self.cut = self.open if self.open is not None and self.open["type"] == "reasoning" else None
            self.cut = self.cut or (self.items[-1] if self.items else None)
        out = self._close()
        for item in self.calls.values():
            out += self._done(item)
        for block in unsent_redacted(response, self.redacted_sent):  # opaque reasoning the stream did not carry
            out += self._reasoning(block)
        answer = finished(self.answer, response)
        answer["output"] = self.items
        kind = "response.completed" if answer["status"] == "completed" else "response.incomplete"
        return [*out, self._event(kind, response=answer)]

    def refused(self, exc: TokenomyError) -> Response:
        refused = _failure(exc, self.origins)
        refused.headers["x-request-id"] = self.ids.removeprefix("_")  # the failed attempts' id in the ledger
        return refused

    def failed(self, exc: TokenomyError) -> bytes:
        kind = exc.kind if isinstance(exc, ProviderError) else "invalid_request"
        return self._ended(
            {
                "code": "rate_limit_exceeded" if kind == "throttled" else "server_error",
                "message": f"upstream {kind}: {exc}",
            }
        )

    def crashed(self, message: str) -> bytes:
        return self._ended({"code": "server_error", "message": message})

    def unavailable(self, message: str) -> bytes:
        return self.crashed(message)  # the Responses API's error codes have no "unavailable"

    def _ended(self, problem: dict[str, str]) -> bytes:
        """response.failed, after the events that open a response when none went out yet (a bug before the first
        piece): the SDK reads a failure only of a response it saw created."""
        opening = b"" if self.started else b"".join(self.start())
        self.answer.update(status="failed", error=problem, output=self.items)
        return opening + self._event("response.failed", response=self.answer)


# -- the route ---------------------------------------------------------------------------------------------------
@router.post("/v1/responses")
async def create_response(request: Request) -> Response:
    """Create a model response in OpenAI's Responses API shape (streaming with `stream: true`)."""
    gw = request.app.state.gateway
    started = time.perf_counter()
    try:
        body = await json_body(request)
    except ValueError as exc:
        message = (
            f'the request body is not valid JSON ({exc}); send a JSON object such as {{"model": ..., "input": ...}}'
        )
        return metrics.done(error(400, message, "invalid_request_error"), "unknown", started)
    model = body.get("model") if isinstance(body, dict) else None
    name: str = model if isinstance(model, str) else ""
    route = gw.route_for(name) if name else None
    label = name if route is not None else "unknown"  # bounded metric labels, whatever clients send
    key = await gw.authenticate_async(request.headers.get("authorization"))
    if isinstance(key, JSONResponse):
        return metrics.done(key, label, started)
    if not isinstance(body, dict) or not name:
        what = (
            "model: required (a string; GET /v1/models lists the names)"
            if isinstance(body, dict)
            else ("the request body must be a JSON object")
        )
        return metrics.done(error(400, what, "invalid_request_error", param="model"), label, started)
    if route is None:
        message = f"The model `{name}` does not exist on this gateway; GET /v1/models lists the names you can use."
        return metrics.done(error(404, message, "invalid_request_error", "model_not_found", "model"), label, started)
    try:
        call, origins = read_request(body)
        if azure_sent(request.scope.get(SENT_PATH)):
            issued_by_azure(call)  # its file ids are Azure's
        tags = call.meta.tags
        call.meta = request_meta(request, route, key, name)
        call.meta.tags = {**tags, **call.meta.tags}  # metadata, and the x-tokenomy-tags header over it
        call.model = route.model or name
        refused = gw.refusal(route, call)
    except RequestError as exc:
        return metrics.done(error(400, str(exc), "invalid_request_error", param=exc.param), name, started)
    except (ValueError, TokenomyError) as exc:
        return metrics.done(error(400, str(exc), "invalid_request_error"), name, started)
    if refused is not None:  # named where the caller sent it
        return metrics.done(_failure(refused, origins), name, started)
    admitted = await admit(gw, request, name, route, key, call, cap_field="max_output_tokens")
    if isinstance(admitted, Refusal):
        failed = error(
            admitted.status,
            admitted.message,
            OPENAI_ERROR_TYPES[admitted.code],
            admitted.code,
            headers=admitted.headers,
        )
        return metrics.done(failed, name, started)
    call.meta.request_id = new_id()  # the response id, its x-request-id header and its ledger rows
    response_id = f"resp_{call.meta.request_id}"
    headers = {"x-request-id": call.meta.request_id}
    if body.get("stream"):
        writer = EventWriter(body, name, response_id, origins)
        return FirstChunkStream(call_streamed(gw, call, admitted, name, started, writer), headers=headers, ends=writer)
    response = await call_whole(gw, call, admitted, name, lambda exc: _failure(exc, origins))
    if isinstance(response, Response):
        response.headers.update(headers)
        return metrics.done(response, name, started)
    output = output_items(response, response_id[4:], wants_summary(body))
    if output and ending(response)[0] == "incomplete":  # the item the cap or filter stopped, as OpenAI marks it
        output[-1]["status"] = "incomplete"
    answer = response_body(body, name, response_id, output=output)
    return metrics.done(JSONResponse(finished(answer, response), headers=headers), name, started)
