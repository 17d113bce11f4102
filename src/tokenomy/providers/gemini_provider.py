"""Gemini through the official `google-genai` SDK: the Gemini API (AI Studio) or Vertex AI.

AI Studio takes an API key (the variable named by `api_key_env`, else GEMINI_API_KEY / GOOGLE_API_KEY);
Vertex AI takes a project and location (region) and Google Cloud credentials. Either can point at
another base URL (`tokenomy emulate gemini`): on a loopback URL without a key or credentials, a
placeholder stands in, as the emulator accepts any.

Usage: Gemini's `prompt_token_count` includes the tokens read from a context cache (implicit or an
explicit `cached_content`); `Usage.input_tokens` excludes them (`cache_read_tokens`). Thinking tokens
(`thoughts_token_count`) are output tokens, as Gemini bills them. A call served at the flex or priority tier
(`service_tier` in `extra`) is priced at that tier: see `served_tier`. Google Search grounding is billed per search
query the answer ran (Gemini 3 and later) or per grounded prompt (Gemini 2.x): `_said` counts the queries.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tokenomy.errors import ConfigError, ProviderError, remember_secret
from tokenomy.ids import new_id
from tokenomy.messages import (
    GEMINI_SIGNED,
    Block,
    ChatRequest,
    ChatResponse,
    ProviderBlock,
    StreamChunk,
    ToolCallDelta,
    ToolUseBlock,
    Usage,
)
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, NAMING_HINTS, Provider, url_server
from tokenomy.providers.bedrock import _is_loopback
from tokenomy.providers.gemini_mapping import (
    GENERATED_ID,
    blocks_from_parts,
    config_fields,
    config_from_request,
    contents_from_request,
    finish_reason,
    modality_counts,
    signature_text,
    usage_from_gemini,
)
from tokenomy.providers.http_faults import (
    answer_broke_off,
    exceeds_context_window,
    http_errors,
    read_timed_out,
    retry_after_seconds,
    where_sent,
)
from tokenomy.providers.refusals import ALL_BLOCKS, Unsupported, with_article
from tokenomy.providers.usage_counts import answered_count, checked_counts, estimated_usage, miscounted

KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


class CallIds:
    """Ids for an answer's function calls Gemini sent without one, unique to the answer (`gemini-call-<id>-<n>`): an
    agent pairs tool results to calls by id, and Anthropic's API refuses a conversation that repeats a tool_use id.
    The GENERATED_ID prefix keeps them out of what goes back to Gemini (`gemini_mapping`)."""

    def __init__(self) -> None:
        self.answer: str | None = None  # drawn at the first call without an id
        self.calls = 0

    def name(self, part: dict[str, Any]) -> None:
        """Give `part`'s function call (if any) an id when it has none."""
        call = part.get("function_call")
        if not isinstance(call, dict):
            return
        if not call.get("id"):
            self.answer = self.answer or new_id()
            call["id"] = f"{GENERATED_ID}{self.answer}-{self.calls}"
        self.calls += 1


# The counts of a usage_metadata that Usage is made of (`usage_from_gemini`).
USAGE_COUNTS = (
    "prompt_token_count",
    "candidates_token_count",
    "cached_content_token_count",
    "thoughts_token_count",
    "tool_use_prompt_token_count",
)
# What of a generateContent request the model reads: the part of it a count sends in `generateContentRequest`.
WHOLE_REQUEST_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig", "cachedContent")
# The tier a call was served at, which Google bills at its own price (flex at half the standard price, priority at
# up to twice it): the Gemini API says so in this response header (a priority call over its limit is served, and
# billed, at standard), Vertex AI in usage_metadata.traffic_type.
TIER_HEADER = "x-gemini-service-tier"
TRAFFIC_TIERS = {"ON_DEMAND": "standard", "ON_DEMAND_FLEX": "flex", "ON_DEMAND_PRIORITY": "priority"}


def served_tier(headers: Any, meta: Any, asked: Any) -> str | None:
    """The service tier Gemini served the call at: its header, else Vertex AI's traffic type, else the tier the
    request asked for (`service_tier` in `extra`, "flex" or "SERVICE_TIER_FLEX"); None when nothing names one."""
    items = headers.items() if hasattr(headers, "items") else ()
    header = next((value for name, value in items if str(name).lower() == TIER_HEADER), None)  # any case
    if header:
        return str(header).lower()
    traffic = getattr(getattr(meta, "traffic_type", None), "value", None)
    if traffic in TRAFFIC_TIERS:
        return TRAFFIC_TIERS[traffic]
    if asked is None:
        return None
    tier = str(getattr(asked, "value", asked)).lower().removeprefix("service_tier_")
    return tier if tier in ("flex", "priority", "standard") else None


def map_gemini_error(exc: Exception) -> ProviderError:
    """Fold the SDK's errors (APIError with an HTTP code, httpx transport errors) into Tokenomy's kinds."""
    from google.genai import errors

    timeouts, transport = http_errors()
    # A read timeout (the request sent, Gemini still working on it) is billed: `reached`, recorded at its estimate.
    if isinstance(exc, timeouts):
        return ProviderError(f"Gemini call timed out: {exc}", kind="timeout", reached=read_timed_out(exc))
    if isinstance(exc, transport):
        if answer_broke_off(exc):  # Gemini answered (and bills it): the connection broke while its body came
            return ProviderError(f"Gemini's answer broke off: {exc}", kind="server_error", reached=True)
        return ProviderError(f"cannot reach the Gemini API{where_sent(exc)}: {exc}", kind="server_error")
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    if isinstance(exc, DefaultCredentialsError):  # no credentials: a retry finds none either
        return ProviderError(
            f"no Google Cloud credentials for Vertex AI ({exc}); run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file",
            kind="client_error",
        )
    if isinstance(exc, RefreshError) and not exc.retryable:  # expired or revoked: a retry is refused the same way
        return ProviderError(
            f"Google Cloud refused the credentials for Vertex AI ({exc.args[0] if exc.args else exc}); run `gcloud "
            "auth application-default login` again or check the key file in GOOGLE_APPLICATION_CREDENTIALS",
            kind="client_error",
        )
    if isinstance(exc, ValueError) and "parameter is only supported in" in str(exc):
        # The SDK refused, before sending, a config field the other API takes (Gemini API vs Vertex AI): final.
        return ProviderError(
            f"Gemini: {exc} (Agent Platform mode is Vertex AI, provider: vertex); remove the field, or send the "
            "request to a model on the other API",
            kind="client_error",
            status=400,
        )
    if isinstance(exc, (json.JSONDecodeError, errors.UnknownApiResponseError)):
        # A 200 whose body (or a stream event's data) is no JSON, as a proxy's error page is: Gemini answered, and
        # bills it, so the attempt is recorded at its estimate, not at $0 as if no request had gone out.
        return ProviderError(f"Gemini sent an answer that is no JSON: {exc}", kind="server_error", reached=True)
    miscount = _miscount(exc)
    if miscount is not None:
        return miscount
    if not isinstance(exc, errors.APIError):
        return ProviderError(f"Gemini {type(exc).__name__}: {exc}", kind="server_error")
    status = int(exc.code or 500)
    message = f"Gemini {exc.status or type(exc).__name__} ({status}): {exc.message or exc}"
    retry_after = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
    if status == 429:
        return ProviderError(message, kind="throttled", retry_after=retry_after, status=429)
    if status in (408, 504):
        return ProviderError(message, kind="timeout", status=status)
    if 400 <= status < 500:
        return ProviderError(
            message, kind="client_error", status=status, context_window=exceeds_context_window(None, message)
        )
    return ProviderError(message, kind="server_error", retry_after=retry_after, status=status)


def _miscount(exc: Exception) -> ProviderError | None:
    """A token count of Gemini's answer that the SDK's pydantic model refused to read as an integer (text, a
    fraction; true it reads as 1): Gemini's fault, said as `answered_count` (countTokens' totalTokens) and
    `usage_count` (usageMetadata, reached: Gemini answered, and bills it) say it, not "Gemini ValidationError" taken
    for no answer at all and recorded at $0. None for any other error."""
    import pydantic

    if not isinstance(exc, pydantic.ValidationError):
        return None
    for error in exc.errors():
        where = error["loc"]
        if where[:1] == ("total_tokens",):
            return miscounted(error.get("input"), "Gemini", "totalTokens")
        if where[:1] == ("usage_metadata",):
            name = ".".join(map(str, where))
            said = f"Gemini answered with token counts no answer can have: {name} {error.get('input')!r}"
            return ProviderError(said, reached=True)
    return None


def vertex_location(location: str | None) -> str:
    """The Vertex AI location a client is made for: the one given, else GOOGLE_CLOUD_LOCATION, else `global`. One
    lookup for the client and for every row and price that must name the location it used (`caches`, batch)."""
    return location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"


def _default_endpoint(vertex: bool, location: str) -> str:
    """The endpoint google-genai calls when no base_url is given: the one its variable names (GOOGLE_GEMINI_BASE_URL,
    GOOGLE_VERTEX_BASE_URL: a proxy's, an emulator's), else the Gemini API's, or Vertex AI's in `location`."""
    named = os.environ.get("GOOGLE_VERTEX_BASE_URL" if vertex else "GOOGLE_GEMINI_BASE_URL")
    if named:
        return named
    if not vertex:
        return "https://generativelanguage.googleapis.com"
    return (
        "https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com"
    )


def gemini_client(
    vertex: bool = False,
    base_url: str | None = None,
    api_key_env: str | None = None,
    project: str | None = None,
    location: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """A `google.genai.Client` for AI Studio or Vertex AI; no SDK retries (Tokenomy's retry layer owns them)."""
    from google.genai import Client, types

    options = types.HttpOptions(
        base_url=base_url, timeout=int(timeout * 1000), retry_options=types.HttpRetryOptions(attempts=1)
    )
    if vertex:
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        location = vertex_location(location)
        if not project:
            raise ConfigError("Vertex AI needs a project: set `project` in the model config or GOOGLE_CLOUD_PROJECT")
        credentials = None
        if _is_loopback(base_url):
            from google.oauth2.credentials import Credentials

            credentials = Credentials(token="tokenomy-local")  # an emulator accepts any bearer token
        return Client(vertexai=True, project=project, location=location, credentials=credentials, http_options=options)
    names = (api_key_env,) if api_key_env else KEY_VARIABLES
    key = remember_secret(next((os.environ[n] for n in names if os.environ.get(n)), None))
    if not key and _is_loopback(base_url):
        key = "tokenomy-local"
    if not key:
        raise ConfigError(
            f"no Gemini API key: set {' or '.join(names)} (or name another variable with api_key_env in the "
            "model config)"
        )
    return Client(api_key=key, http_options=options)


def _blocked(result: Any) -> str | None:
    """SAFETY when Gemini refused the prompt itself (no candidates, a `prompt_feedback.block_reason`)."""
    feedback = getattr(result, "prompt_feedback", None)
    return "SAFETY" if feedback is not None and feedback.block_reason else None


# What Gemini says of a candidate beside its parts: what its built-in tools found (googleSearch, urlContext: the
# caller's sources), and why an answer was cut short (its safety ratings, a finish message). Not citationMetadata:
# the Gemini API and Vertex AI name its list apart (citationSources, citations), and the SDK keeps Vertex AI's name.
CANDIDATE_FIELDS = {"grounding_metadata", "url_context_metadata", "safety_ratings", "finish_message"}


def _said(result: Any, candidate: Any) -> dict[str, Any]:
    """What Gemini said beside the parts, in Gemini's JSON, for the gateway's Gemini routes to send on as Gemini sent
    it (gemini_answers): the candidate's CANDIDATE_FIELDS (`candidate`) and why it blocked the prompt
    (`prompt_feedback`); and the Google searches the model ran (`webSearchQueries`), which Google bills, as
    `server_tool_use.web_search_queries` (pricing/server_tools.py prices them: per query on Gemini 3 and later, per
    grounded prompt on Gemini 2.x)."""
    said: dict[str, Any] = {}
    feedback = getattr(result, "prompt_feedback", None)
    if feedback is not None:
        said["prompt_feedback"] = feedback.model_dump(mode="json", by_alias=True, exclude_none=True)
    held = {name for name in CANDIDATE_FIELDS if getattr(candidate, name, None) is not None}
    if not held:  # most chunks of a stream: no dump to make
        return said
    said["candidate"] = candidate.model_dump(mode="json", by_alias=True, exclude_none=True, include=held)
    queries = getattr(getattr(candidate, "grounding_metadata", None), "web_search_queries", None) or []
    if queries:
        said["server_tool_use"] = {"web_search_queries": len(queries)}
    return said


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
        self.server = url_server(base_url or _default_endpoint(vertex, self.region))
        self.accepts_extra = config_fields() | NAMING_HINTS

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        from google.genai import types

        self.check(request)  # refuses unknown `extra` keys before any call
        contents = contents_from_request(request)
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
                "HARM_CATEGORY_HARASSMENT, BLOCK_NONE or MEDIA_RESOLUTION_LOW), not a number, list or object",
                kind="client_error",
                status=400,
                param=field,
            ) from None
        return {"model": request.model, "contents": contents, "config": config}

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
        tier = raw.pop("service_tier", None)
        if tier:  # where the client reads the tier it prices (client.served_tier), and the gateway's answer shows it
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
        raw.update(_said(result, candidate))
        reason = candidate.finish_reason if candidate else _blocked(result)
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
                said = _said(event, candidate)  # the candidate's fields merged: Gemini sends each with a chunk
                raw.update(said, candidate={**raw.get("candidate", {}), **said.get("candidate", {})})
                if candidate is None:
                    reason = _blocked(event) or reason
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


def answer_usage(request: ChatRequest, meta: Any, content: list[Block], raw: dict[str, Any]) -> Usage:
    """What an answer's usage_metadata says it used. None (or no count in it, as a proxy that strips it sends) is
    estimated, as an OpenAI-format or Claude answer without usage is, not recorded at 0 tokens and $0; a negative
    count is Gemini's fault (`checked_counts`), not a prompt of 0 tokens (`usage_from_gemini` keeps cached tokens
    apart and would hide it) nor an output of -10 the gateway's metrics refuse."""
    counts = [getattr(meta, name, None) for name in USAGE_COUNTS] if meta is not None else []
    if not any(count is not None for count in counts):
        return estimated_usage(request, content, raw)
    if any(count is not None and count < 0 for count in counts):
        said = {name: count for name, count in zip(USAGE_COUNTS, counts, strict=True) if count is not None}
        raise ProviderError(f"Gemini answered with token counts no answer can have: {said}", reached=True)
    return checked_counts(usage_from_gemini(meta), "Gemini")
