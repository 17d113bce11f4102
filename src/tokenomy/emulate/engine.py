"""The model behind the emulators: render a provider request for the local model, count its tokens,
account prompt caching, and generate with the real SmolLM2 (tokens come from its tokenizer)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

from tokenomy.emulate.prompt_cache import CacheAccount, Checkpoint, PromptCache, prefix_digest
from tokenomy.messages import ChatRequest, Message
from tokenomy.providers.local import LocalProvider, load_model
from tokenomy.providers.registry import get_provider, resolve_model

_MARK = "\ue000"  # private-use character: marks cache points inside the rendered prompt, then removed
DEFAULT_MAX_TOKENS = 256


@dataclass
class Block:
    """A piece of prompt text; `cache_ttl` set means a cache point follows it."""

    text: str
    cache_ttl: int | None = None


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
        return self.provider.count_tokens(text) if text else 0

    def prepare(self, namespace: str, system: list[Block], turns: list[Turn], min_tokens: int | None,
                per_checkpoint: bool, max_tokens: int | None, temperature: float | None,
                stop: list[str]) -> Prepared:
        """Render with cache marks, count tokens at each mark, and account the cache."""
        def render(blocks: list[Block]) -> str:
            return "\n".join(b.text.replace(_MARK, "") + (_MARK if b.cache_ttl is not None else "") for b in blocks)

        marked = ChatRequest(messages=[Message(t.role, render(t.blocks)) for t in turns],
                             system=render(system) if system else None)
        ttls = [b.cache_ttl for b in system if b.cache_ttl is not None]
        ttls += [b.cache_ttl for t in turns for b in t.blocks if b.cache_ttl is not None]
        text = self.provider.format_prompt(marked)
        pieces = text.split(_MARK)
        prompt = "".join(pieces)
        total = self.count(prompt)
        n_ctx = load_model().n_ctx()
        if total >= n_ctx - 1:
            raise InputTooLong(f"Input is too long for requested model: {total} prompt tokens; the emulator's "
                               f"local model holds {n_ctx} (set TOKENOMY_LOCAL_CTX to raise it).")
        checkpoints = []
        prefix = ""
        for piece, ttl in zip(pieces[:-1], ttls):
            prefix += piece
            checkpoints.append(Checkpoint(prefix_digest(namespace, prefix), min(self.count(prefix), total), ttl))
        if checkpoints and min_tokens is not None:
            account = self.cache.account(checkpoints, total, min_tokens, per_checkpoint)
        else:
            account = CacheAccount(total, 0, 0)  # the model has no prompt caching: points are ignored
        clean = ChatRequest(messages=[Message(m.role, m.text.replace(_MARK, "")) for m in marked.messages],
                            system=marked.system.replace(_MARK, "") if marked.system else None,
                            max_tokens=max(1, min(max_tokens or DEFAULT_MAX_TOKENS, n_ctx - total - 1)),
                            temperature=temperature, stop=list(stop))
        return Prepared(clean, total, account, clean.max_tokens or DEFAULT_MAX_TOKENS)

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
