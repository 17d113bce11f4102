"""Gemini through the official `google-genai` SDK: the Gemini API (AI Studio) or Vertex AI.

The client (an API key for AI Studio; a project, location and credentials for Vertex AI) is made by
`gemini_client`, the SDK's errors read by `gemini_faults`, and what an answer says beside its parts (call ids, the
served tier, usage) by `gemini_answer_read`; the request is mapped by `gemini_mapping`, and the parts, finish reason
and usage read by `gemini_parts_read`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta
from tokenomy.errors import ProviderError
from tokenomy.messages import GEMINI_SIGNED, ChatRequest, ProviderBlock, ToolUseBlock
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, NAMING_HINTS, Provider, url_server
from tokenomy.providers.block_refusals import ALL_BLOCKS
from tokenomy.providers.gemini_answer_read import CallIds, answer_usage, beside_parts, prompt_blocked, served_tier
from tokenomy.providers.gemini_client import default_endpoint, gemini_client, vertex_location
from tokenomy.providers.gemini_faults import map_gemini_error
from tokenomy.providers.gemini_mapping import (
    MAPPED_CONFIG,
    OWN_FIELDS,
    config_fields,
    config_from_request,
    contents_from_request,
)
from tokenomy.providers.gemini_parts_read import blocks_from_parts, finish_reason, modality_counts, signature_text
from tokenomy.providers.refusals import Unsupported, raise_refusal, with_article
from tokenomy.providers.usage_counts import answered_count

# What of a generateContent request the model reads: the part of it a count sends in `generateContentRequest`.
WHOLE_REQUEST_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig", "cachedContent")


def _unreadable_field(fields: dict[str, Any]) -> str:
    """The config field (snake_case, as the request's `extra` names it) whose enum value google-genai cannot read."""
    from google.genai import types

    for key, value in fields.items():
        try:
            types.GenerateContentConfig.model_validate({key: value})
        except (AttributeError, TypeError):
            return key
        except ValueError:
            continue
    return "config"


def _names_taken(field: str) -> str:
    """Names Gemini takes at `field`, a few of them: its enum's (service_tier's flex, standard, priority), a safety
    setting's category and threshold."""
    import enum
    import typing

    from google.genai import types

    if field == "safety_settings":
        return "HARM_CATEGORY_HARASSMENT or BLOCK_NONE"
    known = types.GenerateContentConfig.model_fields.get(field)
    kinds = list(typing.get_args(known.annotation)) if known else []
    for kind in kinds:  # Optional[Enum], or Optional[list[Enum]]
        kinds.extend(typing.get_args(kind))
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return ", ".join(str(each.value) for each in kind if "UNSPECIFIED" not in each.name.upper())
    return "HARM_CATEGORY_HARASSMENT, BLOCK_NONE or MEDIA_RESOLUTION_LOW"


class GeminiProvider(Provider):
    """generateContent / streamGenerateContent; `stream` measures time to first token from the first part."""

    # A document by URL goes as a fileData URI, which Gemini fetches (as an image's URL does); a fileData URI of
    # Gemini's own (its Files API, Cloud Storage) goes back as it came, to either of Google's APIs, which answer for it.
    accepts_document_fields = frozenset({"source.url"})
    file_apis = frozenset({"gemini"})
    accepts_blocks = (*ALL_BLOCKS, ProviderBlock)  # Gemini's own parts (audio, video), sent as they came

    def reasoning_signer(self, model: str) -> str | None:
        return GEMINI_SIGNED

    def refusal(self, request: ChatRequest) -> Unsupported | None:
        """Another API's own block (Anthropic's server tools' calls and results) is refused by name, as any provider
        refuses one it has no type for: Gemini takes only its own."""
        for i, message in enumerate(request.messages):
            for j, block in enumerate(message.content):
                if type(block) is ProviderBlock and block.api != "gemini":
                    return Unsupported(f"{with_article(f'{block.api} {block.kind}')} block ({{where}})", i, j)
        return super().refusal(request)

    def __init__(
        self,
        vertex: bool = False,
        base_url: str | None = None,
        api_key_env: str | None = None,
        project: str | None = None,
        location: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.name = "gcp.vertex_ai" if vertex else "gcp.gemini"  # OpenTelemetry's gen_ai.provider.name values
        self.region = vertex_location(location) if vertex else "global"
        self.client = gemini_client(vertex, base_url, api_key_env, project, location, timeout)
        self.server = url_server(base_url or default_endpoint(vertex, self.region))
        self.accepts_extra = config_fields() | NAMING_HINTS

    def extra_refusal(self, request: ChatRequest) -> Unsupported | None:
        """A config field the request maps itself, put among the pass-through fields by the SDK's name
        (`frequency_penalty`, `thinking_config`), is refused naming the request's own field to set: Gemini takes it,
        so "cannot take" and "send it to a model that supports it" would be wrong."""
        own = next((key for key in request.extra if key in MAPPED_CONFIG), None)
        if own is None:
            return super().extra_refusal(request)
        text = f"field `{{where}}`: Gemini's name for what the request's own {OWN_FIELDS.get(own, own)} says; set "
        return Unsupported(
            text + "that instead (the gateway and the client map it to Gemini's)", field=own, malformed=True
        )

    def mapping_refusal(self, request: ChatRequest, model: str) -> ProviderError | None:
        """What the config's mapping refuses (`_config`), and a Gemini field it does not carry (`UNCARRIED`: more
        candidates, audio, log probabilities), which a caller of the Gemini API sends among the fields the gateway's
        first check leaves out as Gemini's own (`gateway.calls.refusal`): refused before any call, budget or ledger
        row, as any model's."""
        request = replace(request, model=model)
        try:
            raise_refusal(request, self.name, self.extra_refusal(request))
            self._config(request)
        except ProviderError as exc:
            return exc
        return None

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        self.check(request)  # refuses unknown `extra` keys before any call
        contents = contents_from_request(request)
        return {"model": request.model, "contents": contents, "config": self._config(request)}

    def _config(self, request: ChatRequest) -> Any:
        """The request's GenerateContentConfig, or the 400 for what of it Gemini's mapping cannot take."""
        from google.genai import types

        fields = config_from_request(request)
        try:
            config = types.GenerateContentConfig.model_validate(fields)
        except ValueError as exc:  # pydantic: an `extra` value of the wrong shape
            raise ProviderError(
                f"Gemini (model {request.model}) cannot take the request's config: {str(exc).splitlines()[0]} "
                f"({'; '.join(str(exc).splitlines()[1:3])})",
                kind="client_error",
                status=400,
            ) from None
        except (AttributeError, TypeError):
            # google-genai reads an enum value (a harm category, a media resolution) with `.upper()`: a number, list
            # or object where Gemini takes a name escapes pydantic as AttributeError, which was a 500.
            field = _unreadable_field(fields)
            raise ProviderError(
                f"{field}: Gemini (model {request.model}) takes its names here (strings such as "
                f"{_names_taken(field)}), not a number, list or object",
                kind="client_error",
                status=400,
                param=field,
            ) from None
        return config

    def count_tokens(self, request: ChatRequest) -> int:
        """Gemini's countTokens on the request as `chat` maps it (the answer's cap and sampling left out): Vertex AI
        takes the system instruction and tools beside the contents; the Gemini API takes them in a whole
        `generateContentRequest`, which the SDK does not send (`_count_whole`)."""
        from google.genai import types

        params = self._params(replace(request, max_tokens=None, temperature=None, top_p=None, top_k=None, stop=[]))
        config = params["config"]
        try:
            if self.name == "gcp.vertex_ai":
                counting = types.CountTokensConfig(system_instruction=config.system_instruction, tools=config.tools)
                counted = self.client.models.count_tokens(
                    model=request.model, contents=params["contents"], config=counting
                ).total_tokens
            elif config.system_instruction is None and not config.tools and not config.cached_content:
                counted = self.client.models.count_tokens(model=request.model, contents=params["contents"]).total_tokens
            else:
                counted = self._count_whole(params)
        except Exception as exc:
            raise map_gemini_error(exc) from exc
        return answered_count(counted, "Gemini", "totalTokens")

    def _count_whole(self, params: dict[str, Any]) -> Any:
        """The Gemini API's countTokens with `generateContentRequest`, built by the SDK's own generateContent mapping
        and sent through its client (its key, base URL and timeout): the SDK's count_tokens sends `contents` alone
        and refuses a system instruction or tools, which the model reads and the count must include. The answer's
        totalTokens as Gemini sent it (None when missing), for `answered_count` to check."""
        from google.genai import _common, types
        from google.genai import models as sdk_models

        api = self.client._api_client
        body = sdk_models._GenerateContentParameters_to_mldev(api, types._GenerateContentParameters(**params))
        model = body["_url"]["model"]
        inner = {k: v for k, v in body.items() if k in WHOLE_REQUEST_FIELDS}
        inner = _common.encode_unserializable_types(_common.convert_to_dict({**inner, "model": model}))
        response = api.request("post", f"{model}:countTokens", {"generateContentRequest": inner}, None)
        answer = json.loads(response.body or "{}")
        return answer.get("totalTokens") if isinstance(answer, dict) else None

    def _response(
        self, request: ChatRequest, parts: list[dict[str, Any]], meta: Any, reason: Any, raw: dict, **timing: Any
    ) -> ChatResponse:
        content = blocks_from_parts(parts)
        usage = answer_usage(request, meta, content, raw)
        tool_use = getattr(meta, "tool_use_prompt_token_count", None)
        if isinstance(tool_use, int) and 0 < tool_use <= usage.input_tokens:
            # input, as billed, but apart from the prompt in Gemini's usageMetadata (gemini_answers.usage_body)
            raw["tool_use_prompt_tokens"] = tool_use
        modalities = modality_counts(meta)
        if modalities:  # passed on by the gateway's Gemini answer (gemini_answers.usage_body)
            raw["modality_tokens"] = modalities
        if reason:  # Gemini's own, which finish_reason generalises (RECITATION is a content filter)
            raw["finish_reason"] = str(getattr(reason, "value", reason))
        blocked = raw.get("prompt_feedback", {}).get("blockReason")
        if blocked:  # the prompt itself was refused: its reason (PROHIBITED_CONTENT), not the SAFETY it is answered as
            raw["content_filter"] = f"prompt blocked: {blocked}"
        tier = raw.pop("service_tier", None)
        if tier:  # where the client reads the tier it prices (pricing.served_tier), and the gateway's answer shows it
            raw["top"] = {"service_tier": tier}
        return ChatResponse(
            content=content,
            model=request.model,
            provider=self.name,
            usage=usage,
            finish_reason=finish_reason(reason, content),
            region=self.region,
            raw=raw,
            **timing,
        )

    def chat(self, request: ChatRequest) -> ChatResponse:
        params = self._params(request)
        start = time.perf_counter()
        try:
            result = self.client.models.generate_content(**params)
        except Exception as exc:
            raise map_gemini_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        candidate = (result.candidates or [None])[0]
        parts = (
            [p.model_dump(exclude_none=True) for p in (candidate.content.parts or [])]
            if candidate and candidate.content
            else []
        )
        ids = CallIds()
        for part in parts:
            ids.name(part)
        raw = {"served_model": result.model_version, "response_id": result.response_id}
        raw["service_tier"] = served_tier(
            getattr(result.sdk_http_response, "headers", None),
            result.usage_metadata,
            request.extra.get("service_tier"),
        )
        raw.update(beside_parts(result, candidate))
        reason = candidate.finish_reason if candidate else prompt_blocked(result)
        return self._response(request, parts, result.usage_metadata, reason, raw, latency_ms=latency)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        params = self._params(request)
        start = time.perf_counter()
        ttft = None
        parts: list[dict[str, Any]] = []
        usage_meta = None
        reason = None
        raw: dict[str, Any] = {}
        calls = 0
        ids = CallIds()
        headers = None
        try:
            for event in self.client.models.generate_content_stream(**params):
                usage_meta = event.usage_metadata or usage_meta  # each chunk repeats the running totals
                headers = headers or getattr(event.sdk_http_response, "headers", None)
                raw.update(served_model=event.model_version, response_id=event.response_id)
                candidate = (event.candidates or [None])[0]
                said = beside_parts(event, candidate)  # the candidate's fields merged: Gemini sends each with a chunk
                raw.update(said, candidate={**raw.get("candidate", {}), **said.get("candidate", {})})
                if candidate is None:
                    reason = prompt_blocked(event) or reason
                    continue
                reason = candidate.finish_reason or reason
                for part in (candidate.content.parts or []) if candidate.content else []:
                    item = part.model_dump(exclude_none=True)
                    ids.name(item)  # before the chunk: the stream and the answer name the call alike
                    parts.append(item)
                    chunk = self._chunk(item, calls)
                    calls += bool(item.get("function_call"))
                    if chunk is not None:
                        if ttft is None:
                            ttft = (time.perf_counter() - start) * 1000
                        yield chunk
        except ProviderError:
            raise
        except Exception as exc:
            raise map_gemini_error(exc) from exc
        if reason is None:  # no chunk said why the answer ended: the body was cut, part of an answer arrived
            # It was answered 200, so it is billed (its prompt at least) even when no content came: `reached`.
            raise ProviderError(
                "Gemini stream ended before the answer was complete (no finishReason)",
                kind="server_error",
                reached=True,
            )
        latency = (time.perf_counter() - start) * 1000
        raw["service_tier"] = served_tier(headers, usage_meta, request.extra.get("service_tier"))
        response = self._response(request, parts, usage_meta, reason, raw, latency_ms=latency, ttft_ms=ttft)
        yield StreamChunk(response=response)

    @staticmethod
    def _chunk(part: dict[str, Any], calls: int) -> StreamChunk | None:
        """One streamed part as the caller's chunk (a function call arrives whole, in one part), with the thought
        signature Gemini put on it: the caller must send it back on that part (as the whole answer keeps it)."""
        signature = signature_text(part.get("thought_signature"))
        if part.get("thought") and part.get("text"):
            return StreamChunk(reasoning=part["text"], signature=signature)
        if part.get("function_call"):
            block = blocks_from_parts([{"function_call": part["function_call"]}], calls)[0]
            assert isinstance(block, ToolUseBlock)
            call = ToolCallDelta(calls, block.id, block.name, block.arguments or "{}")
            return StreamChunk(tool_call=call, signature=signature)
        if part.get("text"):
            return StreamChunk(delta=part["text"], signature=signature)
        return StreamChunk(signature=signature) if signature else None

    def close(self) -> None:
        self.client.close()
