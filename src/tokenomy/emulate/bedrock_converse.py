"""Bedrock Converse on the local model: answer a request (`bedrock_request` validates it the way Bedrock does),
account usage.

Content blocks accepted (shapes validated as Bedrock does): text, image (format + bytes), document
(format + name + bytes), toolUse, toolResult (text/json/image/document content, status), reasoningContent
(reasoningText + signature, or redactedContent) and cachePoint; `toolConfig` with tools and toolChoice.
The local model is a text model standing in for a vision model: it reads an image or binary document
as a placeholder line, and usage counts each at the fixed estimate in `engine` (IMAGE_TOKENS,
DOCUMENT_TOKENS). When toolChoice forces a call (`any`: the first tool, `tool`: the named one) the
answer is a toolUse block whose input the local model generated under the tool's JSON-schema grammar.
`additionalModelRequestFields.thinking` ({type: enabled, budget_tokens}, as Claude on Bedrock takes it)
makes the model first write a short reasoning, answered as a signed reasoningContent block; reasoning
sent back to a Claude model must carry a signature this process issued (another model takes it unsigned).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tokenomy.emulate.bedrock_blocks import TTL_SECONDS
from tokenomy.emulate.bedrock_embed import is_embedding_model
from tokenomy.emulate.bedrock_errors import BedrockError
from tokenomy.emulate.bedrock_errors import invalid as _invalid
from tokenomy.emulate.bedrock_models import ModelIdError, ResolvedModel, resolve, route
from tokenomy.emulate.bedrock_request import parse_converse
from tokenomy.emulate.engine import (
    CLAUDE,
    Block,
    CutShort,
    Engine,
    InputTooLong,
    Prepared,
    Turn,
    answer_prepared,
    complete_members,
    generate_to_stop,
    reasoning_prepared,
    sign_reasoning,
)
from tokenomy.emulate.throttle import InjectedThrottle
from tokenomy.providers import eventstream
from tokenomy.providers.bedrock_families import body_family
from tokenomy.providers.converse_request import STOP_SEQUENCE_PATHS, stop_sequence_paths
from tokenomy.providers.reasoning_signers import bedrock_signer

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
TTL_NAMES = {v: k for k, v in TTL_SECONDS.items()}
# CountTokens' `input.converse` (botocore's ConverseTokensRequest): what the model reads, no inference settings.
COUNTED_FIELDS = {"messages", "system", "toolConfig", "additionalModelRequestFields"}


class BedrockEmulator:
    """State behind the routes: the local model, the prompt cache, the throttle RNG."""

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

    def maybe_throttle(self) -> None:
        if self.throttle.hit():
            raise BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")

    def prepare(
        self, model_id: str, body: Any, client_region: str, throttle: bool = True
    ) -> tuple[Prepared, str | None]:
        """Resolve the model, validate the body, render and account the cache; errors are BedrockError."""
        if is_embedding_model(model_id):  # priced in the catalog, but Converse has no embedding model
            raise _invalid(
                "This action doesn't support the model that you provided. Try again with a supported text or chat "
                "model."
            )
        try:
            resolved = resolve(model_id)
        except ModelIdError as exc:
            raise BedrockError(exc.code, exc.message) from None
        if throttle:
            self.maybe_throttle()
        ttl = (resolved.entry.cache_ttl_seconds if resolved.entry else None) or 300
        claude = body_family(resolved.model_id) == "anthropic"
        system, turns, inference = parse_converse(body, ttl, bedrock_signer(resolved.model_id) is not None, claude)
        invoked = None
        if resolved.router is not None:
            # Route on the prompt's size, then account the cache against the model that runs.
            size = sum(self.engine.count(b.text) for b in system) + sum(
                self.engine.count(b.text) for t in turns for b in t.blocks
            )
            resolved, invoked = route(resolved, size, client_region)
        limit = resolved.entry.max_output_tokens if resolved.entry else None  # the catalog's, where it has one
        if limit is not None and inference["max_tokens"] is not None and inference["max_tokens"] > limit:
            raise _invalid(  # Bedrock's own words, Converse and InvokeModel alike ("lower than" the limit itself)
                f"The maximum tokens you requested exceeds the model limit of {limit}. Try again with a maximum "
                f"tokens value that is lower than {limit}."
            )
        _with_tool_prompt(resolved, body, system)  # the model that runs: a router's choice bills its own
        prepared = self._render(resolved, system, turns, inference)
        prepared.forced_tool = inference["forced_tool"]
        prepared.thinking_budget = inference["thinking_budget"]
        if inference["json_schema"] is not None and prepared.forced_tool is None:
            # The answer's text is JSON under the schema: generated as a forced call's input is, sent as text.
            prepared.forced_tool = {"name": "", "schema": inference["json_schema"], "as_text": True}
        return prepared, invoked

    def count(self, model_id: str, body: Any) -> int:
        """CountTokens (`input.converse`): the input tokens Converse would account for the same prompt, uncached."""
        if is_embedding_model(model_id):
            raise _invalid("The provided model doesn't support counting tokens.")
        try:
            resolved = resolve(model_id)
        except ModelIdError as exc:
            raise BedrockError(exc.code, exc.message) from None
        if resolved.router is not None:  # which model a router picks is known only when it runs
            raise _invalid("The provided model doesn't support counting tokens.")
        given = body.get("input") if isinstance(body, dict) else None
        if not isinstance(given, dict) or len(given) != 1:
            raise _invalid("input: exactly one of converse or invokeModel is required.")
        converse = given.get("converse")
        if not isinstance(converse, dict):
            raise _invalid("input.invokeModel: the emulator counts input.converse only; send the Converse request.")
        unknown = sorted(set(converse) - COUNTED_FIELDS)
        if unknown:
            raise _invalid(f"input.converse.{unknown[0]}: not a member of ConverseTokensRequest.")
        system, turns, _ = parse_converse(converse, 300, bedrock_signer(resolved.model_id) is not None)
        return self.engine.count_input(_with_tool_prompt(resolved, converse, system), turns)

    def converse(
        self, model_id: str, body: Any, client_region: str = "us-east-1", throttle: bool = True
    ) -> dict[str, Any]:
        """One whole Converse call: the response body Bedrock returns (raises BedrockError like Bedrock).
        Batch jobs pass throttle=False: on-demand throttling does not apply to them."""
        prepared, invoked = self.prepare(model_id, body, client_region, throttle)
        start = time.perf_counter()
        content: list[dict[str, Any]] = []
        output_tokens, stop, sequence = 0, "end_turn", None
        arguments: dict[int, list[str]] = {}
        for event in answer_events(self.engine, prepared):
            kind, index = event[0], event[1]
            if kind == "start":
                content.append(event[2])
            elif kind == "delta":
                delta = event[2]
                if "text" in delta:
                    content[index]["text"] = content[index].get("text", "") + delta["text"]
                elif "toolUse" in delta:
                    arguments.setdefault(index, []).append(delta["toolUse"]["input"])
                else:
                    text = content[index]["reasoningContent"]["reasoningText"]
                    for key, value in delta["reasoningContent"].items():
                        text[key] = text.get(key, "") + value
            elif kind == "finish":
                output_tokens, stop, sequence = event[1], event[2], event[3] if len(event) > 3 else None
        for index, pieces in arguments.items():  # a call cut by maxTokens keeps its complete members
            joined = "".join(pieces)
            cut = stop == "max_tokens"
            content[index]["toolUse"]["input"] = complete_members(joined) if cut else json.loads(joined)
        result: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": _usage(prepared, output_tokens),
            "metrics": {"latencyMs": int((time.perf_counter() - start) * 1000)},
            **stop_fields(claude_stop_paths(model_id, body), sequence),
        }
        if invoked:
            result["trace"] = {"promptRouter": {"invokedModelId": invoked}}
        return result

    def _render(
        self, resolved: ResolvedModel, system: list[Block], turns: list[Turn], inference: dict[str, Any]
    ) -> Prepared:
        entry = resolved.entry
        points = sum(b.cache_ttl is not None for b in system) + sum(
            b.cache_ttl is not None for t in turns for b in t.blocks
        )
        limit = (entry.cache_max_checkpoints if entry else None) or 4
        if points > limit:
            raise _invalid(
                f"The number of cache points ({points}) exceeds the maximum of {limit} for this model. "
                "Remove cache points and try again."
            )
        min_tokens = (entry.cache_min_tokens or 1024) if entry is not None and entry.has_cache else None
        try:
            return self.engine.prepare(
                resolved.namespace,
                system,
                turns,
                min_tokens,
                True,
                inference["max_tokens"],
                inference["temperature"],
                inference["stop"],
                sampling=inference["sampling"],
            )
        except InputTooLong as exc:
            raise _invalid(str(exc)) from None


def _with_tool_prompt(resolved: ResolvedModel, body: dict[str, Any], system: list[Block]) -> list[Block]:
    """`system` (tools first, as parse_converse renders them, the toolConfig validated) billing the system prompt Claude
    on Bedrock adds to a call that sends tools, by toolChoice (the catalog's tool_prompt_tokens_auto / _any; Nova and
    Llama have none): fresh input the local model does not read, on the first tool's block, as the Anthropic emulator
    bills it."""
    config = body.get("toolConfig")
    if resolved.entry is not None and isinstance(config, dict):
        choice = config.get("toolChoice")
        system[0].extra_tokens += resolved.entry.tool_prompt_tokens(next(iter(choice)) if choice else None)
    return system


def tool_use(engine: Engine, prepared: Prepared) -> tuple[dict[str, Any], str, int, str]:
    """The forced tool call: arguments from the local model under the tool's JSON-schema grammar, with their JSON
    text, output tokens and stopReason ("max_tokens" when the limit cut them: the text is then the part written)."""
    tool = prepared.forced_tool or {}
    # A tool's input is an object; the answer's text under outputConfig's schema is any value it allows (an array).
    generate = getattr(engine, "generate_value" if tool.get("as_text") else "generate_json", None)
    if generate is None:
        raise _invalid("This engine cannot generate tool calls; send the request to the on-demand runtime.")
    try:
        arguments, output_tokens = generate(prepared, tool["schema"])
        text, stop = json.dumps(arguments), "tool_use"
    except CutShort as cut:  # Bedrock stops at max_tokens with the partial output, as Claude's API does
        arguments, text, output_tokens, stop = complete_members(cut.text), cut.text, cut.tokens, "max_tokens"
    except ValueError as exc:
        raise BedrockError("ModelErrorException", f"The model could not call {tool['name']}: {exc}") from None
    use = {"toolUseId": f"tooluse_{uuid.uuid4().hex[:22]}", "name": tool["name"], "input": arguments}
    return use, text, output_tokens, stop


def claude_stop_paths(model_id: str, body: Any) -> list[str]:
    """The paths to Claude's `stop_sequence` a request's additionalModelResponseFieldPaths names (Bedrock reads them
    from the model's own answer, so only a Claude model has that field)."""
    return stop_sequence_paths(body) if body_family(model_id) == "anthropic" else []


def stop_fields(paths: list[str], sequence: str | None) -> dict[str, Any]:
    """additionalModelResponseFields naming the stop sequence that ended the answer (null when none did) at each
    asked path: Converse says only stopReason "stop_sequence", Claude's own answer says which."""
    if not paths:
        return {}
    fields: dict[str, Any] = {}
    for path in paths:
        *parents, last = STOP_SEQUENCE_PATHS[path]
        where = fields
        for key in parents:
            where = where.setdefault(key, {})
        where[last] = sequence
    return {"additionalModelResponseFields": fields}


def _usage(prepared: Prepared, output_tokens: int) -> dict[str, Any]:
    account = prepared.account
    usage: dict[str, Any] = {
        "inputTokens": account.input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": prepared.prompt_tokens + output_tokens,
        "cacheReadInputTokens": account.cache_read_tokens,
        "cacheWriteInputTokens": account.cache_write_tokens,
    }
    if account.writes_by_ttl:  # longest TTL first, as Bedrock sorts them (1h before 5m)
        usage["cacheDetails"] = [
            {"ttl": TTL_NAMES.get(ttl, f"{ttl}s"), "inputTokens": tokens}
            for ttl, tokens in sorted(account.writes_by_ttl, reverse=True)
        ]
    return usage


def answer_events(engine: Engine, prepared: Prepared) -> Iterator[tuple]:
    """The answer as abstract events: ("start", index, block), ("delta", index, delta), ("stop", index), then
    ("finish", output_tokens, stopReason[, the stop sequence that ended it]). Converse and ConverseStream are both
    built from them."""
    index, output_tokens = 0, 0
    if prepared.thinking_budget is not None:
        yield "start", index, {"reasoningContent": {"reasoningText": {"text": ""}}}
        pieces: list[str] = []
        for item in engine.generate(reasoning_prepared(prepared, prepared.thinking_budget)):
            if isinstance(item, str):
                pieces.append(item)
                yield "delta", index, {"reasoningContent": {"text": item}}
            else:
                output_tokens += item[0]
        yield "delta", index, {"reasoningContent": {"signature": sign_reasoning("".join(pieces), CLAUDE)}}
        yield "stop", index
        index += 1
        answering = answer_prepared(prepared, output_tokens)  # maxTokens bounds the reasoning and answer together
        if answering is None:
            yield "finish", output_tokens, "max_tokens"
            return
        prepared = answering
    if prepared.forced_tool is not None and prepared.forced_tool.get("as_text"):
        _, text, tokens, stop = tool_use(engine, prepared)
        yield "start", index, {"text": ""}
        yield "delta", index, {"text": text}
        yield "stop", index
        yield "finish", output_tokens + tokens, "end_turn" if stop == "tool_use" else stop
        return
    if prepared.forced_tool is not None:
        use, arguments, tokens, stop = tool_use(engine, prepared)
        yield "start", index, {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"], "input": {}}}
        half = len(arguments) // 2  # input arrives as JSON fragments, as Bedrock streams it
        for fragment in (arguments[:half], arguments[half:]):
            yield "delta", index, {"toolUse": {"input": fragment}}
        yield "stop", index
        yield "finish", output_tokens + tokens, stop
        return
    yield "start", index, {"text": ""}
    tokens, finish, matched = 0, "stop", None
    for piece in generate_to_stop(engine, prepared):  # stop sequences matched there, so the answer can name one
        if isinstance(piece, str):
            yield "delta", index, {"text": piece}
        else:
            tokens, finish, matched = piece
    yield "stop", index
    if matched is not None:
        yield "finish", output_tokens + tokens, "stop_sequence", matched
        return
    yield "finish", output_tokens + tokens, STOP_REASONS.get(finish, "end_turn")


def stream_events(
    engine: Engine, prepared: Prepared, invoked: str | None, stop_paths: list[str] | None = None
) -> Iterator[bytes]:
    """ConverseStream's event sequence in AWS event-stream framing (Starlette iterates it in a thread); messageStop
    names the stop sequence at each of `stop_paths` (`claude_stop_paths`)."""
    start = time.perf_counter()
    yield eventstream.event("messageStart", {"role": "assistant"})
    output_tokens, stop, sequence = 0, "end_turn", None
    try:
        for event in answer_events(engine, prepared):
            if event[0] == "start":
                block = event[2]
                if "toolUse" in block:  # only tool calls announce themselves; text and reasoning just stream
                    yield eventstream.event(
                        "contentBlockStart",
                        {
                            "contentBlockIndex": event[1],
                            "start": {
                                "toolUse": {
                                    "toolUseId": block["toolUse"]["toolUseId"],
                                    "name": block["toolUse"]["name"],
                                }
                            },
                        },
                    )
            elif event[0] == "delta":
                yield eventstream.event("contentBlockDelta", {"contentBlockIndex": event[1], "delta": event[2]})
            elif event[0] == "stop":
                yield eventstream.event("contentBlockStop", {"contentBlockIndex": event[1]})
            else:
                output_tokens, stop, sequence = event[1], event[2], event[3] if len(event) > 3 else None
    except Exception as exc:  # a failure mid-stream is reported in-band, as Bedrock does
        yield eventstream.exception("modelStreamErrorException", f"The model failed while streaming: {exc}")
        return
    yield eventstream.event("messageStop", {"stopReason": stop, **stop_fields(stop_paths or [], sequence)})
    metadata: dict[str, Any] = {
        "usage": _usage(prepared, output_tokens),
        "metrics": {"latencyMs": int((time.perf_counter() - start) * 1000)},
    }
    if invoked:
        metadata["trace"] = {"promptRouter": {"invokedModelId": invoked}}
    yield eventstream.event("metadata", metadata)
