"""A fast, deterministic stand-in for the local model, for batch emulation of large files.

It has the same `count` / `count_input` / `prepare` / `generate` interface as `engine.Engine`, so the emulators'
request parsing and usage accounting run unchanged; only the generation is replaced. Tokens are
counted as ~4 characters each (no tokenizer load); the answer echoes the last user turn's first
words, one output token per word, cut at `max_tokens`. An optional per-call delay lets tests hold a
job in progress long enough to stop it or let it time out. An optional prompt cache accounts cache points as the
local model's engine does (reads, and writes by TTL), at these counts. An optional context window (`context_tokens`)
refuses a longer prompt as the local model's does, so each emulator answers it with its API's "too long" error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from tokenomy.emulate.engine import DEFAULT_MAX_TOKENS, Block, CutShort, InputTooLong, Prepared, Turn
from tokenomy.emulate.json_schemas import schema_problem
from tokenomy.emulate.prompt_cache import CacheAccount, Checkpoint, PromptCache, prefix_digest
from tokenomy.messages import ChatRequest, Message

ANSWER_WORDS = 12  # an unconstrained answer is this many words (= output tokens)


class InstantEngine:
    """Answers instantly (or after `delay_s`) with text and usage that depend only on the request."""

    def __init__(
        self, delay_s: float = 0.0, cache: PromptCache | None = None, context_tokens: int | None = None
    ) -> None:
        self.delay_s = delay_s
        self.cache = cache  # None: no prompt cache, every prompt token is fresh input
        self.context_tokens = context_tokens  # None: any prompt fits

    def count(self, text: str) -> int:
        return (len(text) + 3) // 4 if text else 0

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
        """Render the turns; with a prompt cache, account each cache point's prefix (system blocks, then turns')."""
        messages = [Message(t.role, "\n".join(b.text for b in t.blocks)) for t in turns]
        system_text = "\n".join(b.text for b in system) or None
        limit = max_tokens or DEFAULT_MAX_TOKENS
        request = ChatRequest(
            messages=messages,
            system=system_text,
            max_tokens=limit,
            temperature=temperature,
            stop=list(stop),
            **(sampling or {}),
        )
        total = self.count_input(system, turns)
        if self.context_tokens is not None and total >= self.context_tokens:
            raise InputTooLong(
                f"Input is too long for requested model: {total} prompt tokens; the emulator's model holds "
                f"{self.context_tokens}."
            )
        account = CacheAccount(total, 0, 0)
        if self.cache is not None and min_tokens is not None:
            checkpoints, prefix = [], ""
            for block in [*system, *(b for t in turns for b in t.blocks)]:
                prefix += block.text + "\n"
                if block.cache_ttl is not None:
                    tokens = min(self.count(prefix), total)
                    checkpoints.append(Checkpoint(prefix_digest(namespace, prefix), tokens, block.cache_ttl))
            if checkpoints:
                account = self.cache.account(checkpoints, total, min_tokens, per_checkpoint)
        return Prepared(request, total, account, limit)

    def count_input(self, system: list[Block], turns: list[Turn]) -> int:
        """The prompt's input tokens as `prepare` accounts them (the emulators' counting endpoints answer this)."""
        system_text = "\n".join(b.text for b in system)
        # One token per turn for the role marker, as chat templates add a few tokens per message.
        total = self.count(system_text) + sum(self.count("\n".join(b.text for b in t.blocks)) + 1 for t in turns)
        # Images and binary documents count at the engine's fixed estimates, as with the local model.
        return total + sum(b.extra_tokens for b in system) + sum(b.extra_tokens for t in turns for b in t.blocks)

    def generate(self, prepared: Prepared) -> Iterator[str | tuple[int, str]]:
        if self.delay_s:
            time.sleep(self.delay_s)
        last_user = next((m.text for m in reversed(prepared.request.messages) if m.role == "user"), "")
        words = ["Re:", *last_user.split()[: ANSWER_WORDS - 1]]
        kept = words[: prepared.max_tokens]
        yield " ".join(kept)
        yield len(kept), ("length" if len(kept) < len(words) else "stop")

    def generate_json(self, prepared: Prepared, schema: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """A tool call's arguments: a minimal object valid against `schema` (`generate_value`)."""
        value, tokens = self.generate_value(prepared, schema)
        if not isinstance(value, dict):
            raise ValueError("the schema does not describe a JSON object")
        return value, tokens

    def generate_value(self, prepared: Prepared, schema: dict[str, Any]) -> tuple[Any, int]:
        """A minimal value valid against `schema` (an object's required properties, each a placeholder of its
        type); cut at max_tokens (CutShort) as the local model's would be. Raises ValueError for a schema that is
        not one, as the local model's grammar converter does (the emulators refuse those before they get here)."""
        problem = schema_problem(schema or {"type": "object"})
        if problem is not None:
            raise ValueError(f"the schema is not a valid JSON schema: {problem}")
        value = _example(schema or {"type": "object"})
        text = json.dumps(value)
        tokens = max(1, self.count(text))
        if tokens > prepared.max_tokens:
            raise CutShort(text[: prepared.max_tokens * 4], prepared.max_tokens)
        return value, tokens


# Values of the string formats structured-output libraries ask for (pydantic's datetime, date, UUID, ...): "x" is
# none of them, and the caller's parser would refuse the answer a real model, held to the schema, gives.
FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "x@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _example(schema: Any, root: Any = None) -> Any:
    """A minimal value valid against `schema`: a `$ref` into the schema's own definitions followed (pydantic puts an
    enum or a nested model in `$defs`), a choice's `null` branch when it has one (an Optional field: the least to
    write, and no endless descent into a model that refers to itself), else its first."""
    root = schema if root is None else root
    if not isinstance(schema, dict):  # a boolean schema: `true` takes any value (`false` none, so none fits)
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target = root
        for part in filter(None, ref[1:].split("/")):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        return _example(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices:
            null = next((c for c in choices if isinstance(c, dict) and c.get("type") == "null"), None)
            return None if null is not None and key != "allOf" else _example(choices[0], root)
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _example(props.get(name) or {}, root) for name in schema.get("required") or list(props)}
    if kind == "array":
        return [_example(schema.get("items") or {}, root) for _ in range(schema.get("minItems") or 0)]
    if kind == "string":
        return FORMATS.get(str(schema.get("format")), "x" * max(1, schema.get("minLength") or 1))
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind, "x")
