"""The model behind the emulators: render a provider request for the local model, count its tokens,
account prompt caching, and generate with the real SmolLM2 (tokens come from its tokenizer).

The local model reads text only. Images and binary documents reach it as a one-line placeholder and
are counted at a fixed estimate (`caching.placement.IMAGE_TOKENS` and `DOCUMENT_TOKENS`, the figures budgets
reserve: roughly what Claude reports for a ~1 megapixel image and a one-page PDF) as fresh input tokens,
never cached; so an emulated call with an image costs what a vision model would charge, while the answer is
the text model's.
Forced tool calls are generated under a JSON-schema grammar (`generate_json`), so their arguments
always parse and follow the tool's schema.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from tokenomy.emulate.prompt_cache import CacheAccount, Checkpoint, PromptCache, prefix_digest
from tokenomy.messages import ChatRequest, Message
from tokenomy.providers.local import LocalProvider, load_model
from tokenomy.providers.registry import get_provider, resolve_model

_MARK = "\ue000"  # private-use character: marks cache points inside the rendered prompt, then removed
DEFAULT_MAX_TOKENS = 256
JSON_MAX_TOKENS = 512  # room for a tool call's arguments under the grammar
THINKING_TOKENS = 48  # emulated reasoning is short: the local model is small and the CPU shared
_SIGNING_KEY = os.urandom(32)  # reasoning signatures are valid for this process only, like a provider's


# Who signs: Claude's signatures hold on Anthropic's API, Bedrock and Vertex AI alike (Anthropic's docs), so the
# Anthropic and Bedrock emulators sign as CLAUDE; Gemini's emulator as GEMINI, and each refuses the other's.
CLAUDE = "claude"
GEMINI = "gemini"


def sign_reasoning(text: str, signer: str) -> str:
    """The signature an emulator puts on reasoning it wrote; reasoning sent back must carry it."""
    digest = hmac.new(_SIGNING_KEY, f"{signer}\0{text}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_valid(text: str, signature: object, signer: str) -> bool:
    # As bytes: compare_digest raises on a str with non-ASCII (another provider's signature bytes read as text)
    expected = sign_reasoning(text, signer).encode()
    return isinstance(signature, str) and hmac.compare_digest(signature.encode(), expected)


def reasoning_prepared(prepared: Prepared, budget: int) -> Prepared:
    """The same request, asked to think briefly first: its output is the emulated reasoning, within the budget and
    within max_tokens, which bounds a response's reasoning and answer together (under Claude's interleaved thinking
    the budget is the whole turn's and may exceed it)."""
    request = prepared.request
    limit = min(THINKING_TOKENS, budget, prepared.max_tokens)
    return dataclasses.replace(
        prepared,
        max_tokens=limit,
        request=dataclasses.replace(
            request,
            system=(request.system or "") + "\nBefore answering, think briefly, step by step.",
            max_tokens=limit,
        ),
    )


def answer_prepared(prepared: Prepared, reasoned: int) -> Prepared | None:
    """The request's answer after `reasoned` tokens of reasoning: it gets what those left of max_tokens, or is None
    when they left nothing (the response stops at max_tokens before any answer, as the APIs' does)."""
    left = prepared.max_tokens - reasoned
    if left <= 0:
        return None
    return dataclasses.replace(
        prepared, max_tokens=left, request=dataclasses.replace(prepared.request, max_tokens=left)
    )


@dataclass
class Block:
    """A piece of prompt text; `cache_ttl` set means a cache point follows it."""

    text: str
    cache_ttl: int | None = None
    extra_tokens: int = 0  # billed input the local model does not read (an image's fixed estimate)
    audio_tokens: int = 0  # those of extra_tokens that are audio (Gemini reports them apart: its AUDIO modality)


@dataclass
class Turn:
    role: str
    blocks: list[Block]


@dataclass
class Prepared:
    """A rendered request ready to generate, with its prompt-token split."""

    request: ChatRequest
    prompt_tokens: int
    account: CacheAccount
    max_tokens: int
    forced_tool: dict[str, Any] | None = None  # {"name", "schema"} when the tool choice forces a call
    thinking_budget: int | None = None  # extended thinking was asked for, with this budget
    web_search: dict[str, Any] | None = None  # Anthropic's web search tool was offered (emulate/anthropic_search.py)
    citation: dict[str, Any] | None = None  # what a cited answer cites (emulate/anthropic_citations.py)
    speed: str | None = None  # the speed Claude's answer says it ran at (fast mode: emulate/anthropic_request.py)
    max_tokens_asked: bool = False  # the caller set max_tokens: JSON generation keeps to it too


class CutShort(ValueError):
    """JSON generation reached max_tokens: `text` is the output so far (not valid JSON), `tokens` its count.
    The APIs answer this as a max_tokens stop with the partial output, not as an error."""

    def __init__(self, text: str, tokens: int) -> None:
        super().__init__(f"the output was cut short at max_tokens ({tokens} tokens)")
        self.text = text
        self.tokens = tokens


def complete_members(text: str) -> dict[str, Any]:
    """The complete top-level members of a JSON object cut short (`{"a": 1, "b": "x` gives {"a": 1}): what
    Claude's API puts in a tool_use block's input when max_tokens cuts the call."""
    depth, in_string, escaped, last_comma = 0, False, False, -1
    for i, char in enumerate(text):
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        elif char == "," and depth == 1:
            last_comma = i
    if last_comma < 0:
        return {}
    try:
        value = json.loads(text[:last_comma] + "}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class InputTooLong(ValueError):
    """The prompt does not fit the local model's context."""


class Engine:
    """One local model and one prompt cache, shared by all requests of an emulator app."""

    def __init__(self, cache: PromptCache | None = None) -> None:
        # The process-wide LocalProvider: llama.cpp's context is global and only its lock serialises use,
        # so the emulator must share the instance a Tokenomy client in the same process would use.
        self.provider: LocalProvider = get_provider(resolve_model("local"))  # type: ignore[assignment]
        self.cache = cache or PromptCache()
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        return self.provider.count_text(text) if text else 0

    def count_input(self, system: list[Block], turns: list[Turn]) -> int:
        """The prompt's input tokens as `prepare` accounts them (rendered text plus the fixed estimate of each image
        and binary document), with no cache lookup: the emulators' token-counting endpoints answer this, so a count
        equals the input, cache-read and cache-write tokens of the same prompt's answer."""

        def render(blocks: list[Block]) -> str:  # as `prepare` renders, without its cache marks
            return "\n".join(b.text.replace(_MARK, "") for b in blocks)

        request = ChatRequest(
            messages=[Message(t.role, render(t.blocks)) for t in turns], system=render(system) if system else None
        )
        extra = sum(b.extra_tokens for b in system) + sum(b.extra_tokens for t in turns for b in t.blocks)
        return self.count(self.provider.format_prompt(request)) + extra

    def prepare(
        self,
        namespace: str,
        system: list[Block],
        turns: list[Turn],
        min_tokens: int | None,
        per_checkpoint: bool,
        max_tokens: int | None,
        temperature: float | None,
        stop: list[str],
        sampling: dict[str, Any] | None = None,
    ) -> Prepared:
        """Render with cache marks, count tokens at each mark, and account the cache. `sampling`: more of
        ChatRequest's sampling fields (top_p, top_k, seed), which the local model applies."""

        def render(blocks: list[Block]) -> str:
            return "\n".join(b.text.replace(_MARK, "") + (_MARK if b.cache_ttl is not None else "") for b in blocks)

        marked = ChatRequest(
            messages=[Message(t.role, render(t.blocks)) for t in turns], system=render(system) if system else None
        )
        ttls = [b.cache_ttl for b in system if b.cache_ttl is not None]
        ttls += [b.cache_ttl for t in turns for b in t.blocks if b.cache_ttl is not None]
        text = self.provider.format_prompt(marked)
        pieces = text.split(_MARK)
        prompt = "".join(pieces)
        total = self.count(prompt)
        n_ctx = load_model().n_ctx()
        if total >= n_ctx - 1:
            raise InputTooLong(
                f"Input is too long for requested model: {total} prompt tokens; the emulator's "
                f"local model holds {n_ctx} (set TOKENOMY_LOCAL_CTX to raise it)."
            )
        checkpoints = []
        prefix = ""
        for piece, ttl in zip(pieces[:-1], ttls, strict=True):
            prefix += piece
            checkpoints.append(Checkpoint(prefix_digest(namespace, prefix), min(self.count(prefix), total), ttl))
        if checkpoints and min_tokens is not None:
            account = self.cache.account(checkpoints, total, min_tokens, per_checkpoint)
        else:
            account = CacheAccount(total, 0, 0)  # the model has no prompt caching: points are ignored
        clean = ChatRequest(
            messages=[Message(m.role, m.text.replace(_MARK, "")) for m in marked.messages],
            system=marked.system.replace(_MARK, "") if marked.system else None,
            max_tokens=max(1, min(max_tokens or DEFAULT_MAX_TOKENS, n_ctx - total - 1)),
            temperature=temperature,
            stop=list(stop),
            **(sampling or {}),
        )
        extra = sum(b.extra_tokens for b in system) + sum(b.extra_tokens for t in turns for b in t.blocks)
        if extra:  # images and binary documents: fresh input at their fixed estimate (module docstring)
            account = dataclasses.replace(account, input_tokens=account.input_tokens + extra)
        limit = clean.max_tokens or DEFAULT_MAX_TOKENS
        return Prepared(clean, total + extra, account, limit, max_tokens_asked=max_tokens is not None)

    def generate(self, prepared: Prepared) -> Iterator[str | tuple[int, str]]:
        """Yield text deltas, then (output_tokens, finish_reason) where finish is 'stop' or 'length'."""
        output_tokens, finish = 0, "stop"
        for chunk in self.provider.stream(prepared.request):
            if chunk.response is not None:
                output_tokens = chunk.response.usage.output_tokens
                finish = chunk.response.finish_reason
            elif chunk.delta:
                yield chunk.delta
        yield output_tokens, finish

    def generate_json(self, prepared: Prepared, schema: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """A tool call's arguments: a JSON object valid against `schema`, and its token count (`generate_value`)."""
        value, tokens = self.generate_value(prepared, schema)
        if not isinstance(value, dict):
            raise ValueError("the model's tool arguments are not a JSON object")
        return value, tokens

    def generate_value(self, prepared: Prepared, schema: dict[str, Any]) -> tuple[Any, int]:
        """Generate a JSON value valid against `schema` (llama.cpp grammar; Gemini's response schema may be an
        array or a string); returns it and its token count.
        Raises CutShort when max_tokens stops it, ValueError when the schema cannot be turned into a grammar."""
        from llama_cpp import LlamaGrammar

        try:
            grammar = LlamaGrammar.from_json_schema(json.dumps(schema or {"type": "object"}), verbose=False)
        except Exception as exc:  # llama.cpp's converter raises plain exceptions for schemas it cannot express
            raise ValueError(f"the tool's input schema cannot be turned into a grammar: {exc}") from None
        llm = load_model()
        prompt = self.provider.format_prompt(prepared.request)
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        # A caller's max_tokens binds as the APIs' does; with none, leave room for a tool call's arguments.
        limit = prepared.max_tokens if prepared.max_tokens_asked else max(prepared.max_tokens, JSON_MAX_TOKENS)
        with self.provider._lock:  # the llama.cpp context is shared by the whole process
            result = llm.create_completion(tokens, max_tokens=limit, temperature=0.0, grammar=grammar, seed=0)
        text = result["choices"][0]["text"]
        output_tokens = int(result["usage"]["completion_tokens"])
        try:
            value = json.loads(text)
        except ValueError:
            raise CutShort(text, output_tokens) from None
        return value, output_tokens


def generate_to_stop(engine: Any, prepared: Prepared) -> Iterator[str | tuple[int, str, str | None]]:
    """`engine.generate` with the request's stop sequences matched here, as the APIs do: text deltas (never the
    sequence itself), then (output_tokens, finish, matched), finish "stop_sequence" and `matched` the sequence when
    one ended the text. llama.cpp drops a stop sequence it meets and cannot say which one it was, so the model is
    run without them."""
    stops = prepared.request.stop
    if not stops:
        yield from ((*item, None) if isinstance(item, tuple) else item for item in engine.generate(prepared))
        return
    generated = engine.generate(dataclasses.replace(prepared, request=dataclasses.replace(prepared.request, stop=[])))
    output_tokens, finish, held, sent = 0, "stop", "", ""
    for item in generated:
        if not isinstance(item, str):
            output_tokens, finish = item[0], item[1]
            continue
        held += item
        matched = min(((held.find(s), s) for s in stops if s in held), default=None)
        if matched is not None:  # the answer ends before the sequence
            text = held[: matched[0]]
            if text:
                yield text
            if isinstance(generated, Generator):  # stops the local model now (and frees its lock)
                generated.close()
            yield engine.count(sent + text + matched[1]), "stop_sequence", matched[1]
            return
        keep = max((n for s in stops for n in range(1, len(s)) if held.endswith(s[:n])), default=0)
        text, held = held[: len(held) - keep], held[len(held) - keep :]  # a sequence's start may finish next
        if text:
            sent += text
            yield text
    if held:
        yield held
    yield output_tokens, finish, None
