"""Amazon Bedrock through boto3's `bedrock-runtime` Converse / ConverseStream APIs (and InvokeModel for the
embedding models, which have no Converse: `embed`, its bodies in `bedrock_embeddings`; and for a text-completion
body sent as written, Titan Text's, Llama's or Mistral's: `bedrock_prompt_bodies`). Its errors are read as
Tokenomy's error kinds in `bedrock_faults`; what its answers say (usage, finish reason, the model a prompt router ran)
in `bedrock_answer_read`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tokenomy.chat_response import ChatResponse, StreamChunk, ToolCallDelta
from tokenomy.errors import ConfigError, ProviderError
from tokenomy.messages import Block, ChatRequest, TextBlock
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.providers import bedrock_embeddings, bedrock_prompt_bodies
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, Provider, delta_chunk, is_loopback, outlasts, url_server
from tokenomy.providers.bedrock_answer_read import (
    FINISH_REASONS,
    answer_fields,
    ask_stop_sequence,
    check_answered_count,
    check_usage,
    invoked_model,
    usage_from_bedrock,
)
from tokenomy.providers.bedrock_families import body_family
from tokenomy.providers.bedrock_faults import map_bedrock_error
from tokenomy.providers.converse_mapping import (  # noqa: F401 (re-exported)
    CACHE_POINT,
    blocks_from_converse,
    to_bedrock_tools,
    to_converse_params,
)
from tokenomy.providers.converse_refusals import refuse_content, refuse_unsupported
from tokenomy.providers.converse_stream import ConverseStreamAssembler
from tokenomy.providers.reasoning_signers import bedrock_signer
from tokenomy.providers.refusals import MAX_CACHE_POINTS
from tokenomy.providers.usage_counts import answered_count, estimated_usage

# What of a Converse request CountTokens' `input.converse` takes (botocore's ConverseTokensRequest).
COUNTED = ("messages", "system", "toolConfig", "additionalModelRequestFields")
# The families whose ConverseStream takes all their Converse takes, tool use included (Bedrock user guide,
# "Supported models and model features"): Llama's, Mistral's and others' stream no tool use.
STREAMS_ALL = frozenset({"anthropic", "nova"})


def default_region(explicit: str | None = None, session_region: str | None = None) -> str:
    """The usual AWS lookup: explicit value, AWS_REGION, AWS_DEFAULT_REGION, profile config, us-east-1."""
    return (
        explicit
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or session_region
        or "us-east-1"
    )


class BedrockProvider(Provider):
    """Converse for whole answers, ConverseStream for time to first token."""

    name = "aws.bedrock"
    # Any pass-through field: Converse's own top-level ones are placed there, the rest are the model's parameters
    # (additionalModelRequestFields); the mapping refuses those that clash or would be mispriced.
    accepts_extra = None
    accepts_user = True  # requestMetadata.user_id (converse_mapping)
    refuses_empty_text = True  # Converse: "The text field in the ContentBlock object at ... is blank"
    accepts_1h_cache = True  # cachePoint ttl "1h" (Claude 4.5 and later; the client refuses a model without its price)
    accepts_native_body = True  # a Titan Text, Llama or Mistral body, to a model of its family (`_invoke_prompt`)
    # No max_tokens 0 (Anthropic's cache warming), so it is refused by name: Converse's inferenceConfig.maxTokens is
    # at least 1. Whether InvokeModel takes Claude's max_tokens 0 is unknown here (Bedrock's documentation we could
    # check says nothing of it), and this provider calls Converse anyway; the gateway's InvokeModel ingress refuses
    # it the same way for a route to Bedrock.

    def cache_point_limit(self, request: ChatRequest) -> int | None:
        return MAX_CACHE_POINTS

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.Session(profile_name=profile) if profile else boto3.Session()
        except ProfileNotFound as exc:
            where = "the model's `profile:` in tokenomy.yaml" if profile else "AWS_PROFILE"
            raise ConfigError(
                f"{exc}: fix {where} to name a profile in ~/.aws/config or ~/.aws/credentials "
                "(`aws configure list-profiles`), or remove it to use the default credentials"
            ) from None
        self.region = default_region(region, session.region_name)
        self.endpoint_url = endpoint_url or os.environ.get("TOKENOMY_BEDROCK_ENDPOINT") or None
        # Tokenomy's retry layer owns retries (with ledger rows per attempt), so botocore must not retry.
        # botocore's `max_attempts` counts retries after the first try (1 would still retry once);
        # `total_max_attempts` counts every try, so 1 means exactly one HTTP request per call.
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.timeout = read_timeout
        self._session = session
        self._kwargs: dict[str, Any] = {"config": config}
        if self.endpoint_url:
            self._kwargs["endpoint_url"] = self.endpoint_url
            # A local emulator ignores signatures; don't make offline development depend on AWS credentials.
            if is_loopback(self.endpoint_url) and session.get_credentials() is None:
                self._kwargs.update(aws_access_key_id="tokenomy-local", aws_secret_access_key="tokenomy-local")
        self._clients: dict[str, Any] = {}
        self._servers: dict[str, tuple[str, int] | None] = {}  # each region's endpoint, found with its client
        self._lock = threading.Lock()
        self.client = self._client(self.region)
        self.server = self._servers[self.region]

    def _client(self, region: str):
        """One boto3 client per region: a request (e.g. a region fallback) may name another region."""
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._session.client("bedrock-runtime", region_name=region, **self._kwargs)
                client.meta.events.register("before-parse.bedrock-runtime.CountTokens", check_answered_count)
                client.meta.events.register("before-parse.bedrock-runtime.Converse", check_usage)
                self._clients[region] = client
                self._servers[region] = url_server(client.meta.endpoint_url)  # the regional host, or endpoint_url
            return client

    def mapping_refusal(self, request: ChatRequest, model: str) -> ProviderError | None:
        if request.native_body is not None:  # sent as written: only a model of a text-completion family takes it
            if bedrock_prompt_bodies.model_family(model) is not None:
                return None
            return ProviderError(
                f"model `{model}` (aws.bedrock) takes no text-completion body (Titan Text's, Llama's or Mistral's); "
                "send it to a model of its family, or send the conversation through Converse",
                kind="client_error",
                status=400,
            )
        try:
            refuse_unsupported(request, model)  # what to_converse_params refuses first
            refuse_content(request, model)
        except ProviderError as exc:
            return exc
        return None

    def reasoning_signer(self, model: str) -> str | None:
        return bedrock_signer(model)

    def server_for(self, request: ChatRequest) -> tuple[str, int] | None:
        region = self._region_for(request)
        if region not in self._servers:
            self._client(region)
        return self._servers[region]

    def _region_for(self, request: ChatRequest) -> str:
        region = request.region
        return pricing_region(region) or self.region

    def _response(
        self,
        request: ChatRequest,
        content: list[Block],
        stop_reason: str | None,
        usage: dict | None,
        trace: dict | None,
        latency: float,
        ttft: float | None,
        raw: dict[str, Any],
        fields: dict | None = None,
        asked_stop: bool = False,
    ) -> ChatResponse:
        model, region = request.model, self._region_for(request)
        matched = (fields or {}).get("stop_sequence")
        if asked_stop and fields:  # the gateway's question (`ask_stop_sequence`), not the caller's
            fields = {k: v for k, v in fields.items() if k != "stop_sequence"}
        if stop_reason:  # Converse's own, which finish_reason generalises (guardrail_intervened is a content filter)
            raw["stop_reason"] = stop_reason
        answered = answer_fields(fields, trace)
        if answered:
            raw["top"] = answered  # the gateway hands them to the caller beside the answer (OpenAI's top level)
        routed, routed_region = invoked_model(trace)
        if routed:
            # Price what actually ran, not the router ARN (which has no price of its own).
            raw["requested_model"] = request.model
            raw["invoked_model_id"] = (trace or {}).get("promptRouter", {}).get("invokedModelId")
            model, region = routed, routed_region or region
        return ChatResponse(
            content=content,
            model=model,
            provider=self.name,
            usage=usage_from_bedrock(usage) if usage else estimated_usage(request, content, raw),  # none sent
            finish_reason=FINISH_REASONS.get(stop_reason or "end_turn", stop_reason or "stop"),
            latency_ms=latency,
            ttft_ms=ttft,
            region=region,
            raw=raw,
            # The sequence Claude matched (asked for by `ask_stop_sequence`); "" when the answer does not say which.
            stop_sequence=(matched if isinstance(matched, str) else "") if stop_reason == "stop_sequence" else None,
        )

    def chat(self, request: ChatRequest) -> ChatResponse:
        from botocore.exceptions import BotoCoreError, ClientError

        if request.native_body is not None:
            return self._invoke_prompt(request)
        params = to_converse_params(request)  # refuses unsupported fields before any call
        # A cap whose answer could outlast the timeout (a caller's 32,000) is sent through ConverseStream and folded
        # into one answer (`outlasts`), on a model whose stream takes what Converse does. No cap sent (Bedrock's
        # default, which it does not publish per model) stays a Converse call: raise timeout_s for those.
        cap = (params.get("inferenceConfig") or {}).get("maxTokens")
        if outlasts(cap, self.timeout) and body_family(request.model) in STREAMS_ALL:
            return replace(super().chat(request), ttft_ms=None)  # as for a call not streamed: no time to first token
        asked_stop = ask_stop_sequence(request, params)
        start = time.perf_counter()
        try:
            result = self._client(self._region_for(request)).converse(**params)
        except (ClientError, BotoCoreError) as exc:
            raise map_bedrock_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        if "output" not in result or "stopReason" not in result:
            # botocore reads a body it cannot parse (one cut off midway) as an empty result: no answer, though the
            # model may have generated (and billed) a whole one.
            raise ProviderError("Bedrock's Converse answer could not be read (cut off?)", reached=True)
        content = ((result.get("output") or {}).get("message") or {}).get("content") or []
        raw: dict[str, Any] = {
            "request_id": result.get("ResponseMetadata", {}).get("RequestId"),
            "server_latency_ms": (result.get("metrics") or {}).get("latencyMs"),
        }
        return self._response(
            request,
            blocks_from_converse(content),
            result.get("stopReason"),
            result.get("usage"),
            result.get("trace"),
            latency,
            None,
            raw,
            result.get("additionalModelResponseFields"),
            asked_stop,
        )

    def _invoke_prompt(self, request: ChatRequest) -> ChatResponse:
        """InvokeModel with the request's text-completion body as written, its answer read in its family's shape
        (kept whole in `raw["answer"]`, which the gateway's InvokeModel route relays)."""
        from botocore.exceptions import BotoCoreError, ClientError
        from urllib3.exceptions import HTTPError

        family = bedrock_prompt_bodies.model_family(request.model)
        assert family is not None, "mapping_refusal refuses a body for a model of no text-completion family"
        start = time.perf_counter()
        try:
            result = self._client(self._region_for(request)).invoke_model(
                modelId=request.model,
                body=json.dumps(bedrock_prompt_bodies.with_cap(request.native_body or {}, family, request.max_tokens)),
                contentType="application/json",
                accept="application/json",
            )
            body = result["body"].read()
        except (ClientError, BotoCoreError, HTTPError) as exc:
            raise map_bedrock_error(exc) from exc
        latency = (time.perf_counter() - start) * 1000
        metadata = result.get("ResponseMetadata") or {}
        try:
            answer = json.loads(body)
            said = bedrock_prompt_bodies.read_answer(family, answer, metadata.get("HTTPHeaders") or {})
        except ValueError as exc:  # answered 200, so billed: `reached`
            raise ProviderError(f"Bedrock's InvokeModel answer could not be read: {exc}", reached=True) from None
        content: list[Block] = [TextBlock(said.text)]
        raw: dict[str, Any] = {"request_id": metadata.get("RequestId"), "answer": answer}
        if said.stop_reason:
            raw["stop_reason"] = said.stop_reason
        counted = said.input_tokens is not None and said.output_tokens is not None
        return ChatResponse(
            content=content,
            model=request.model,
            provider=self.name,
            usage=usage_from_bedrock({"inputTokens": said.input_tokens, "outputTokens": said.output_tokens})
            if counted
            else estimated_usage(request, content, raw),
            finish_reason=said.finish_reason,
            latency_ms=latency,
            ttft_ms=None,
            region=self._region_for(request),
            raw=raw,
        )

    def count_tokens(self, request: ChatRequest) -> int:
        """Bedrock's CountTokens on the request as Converse takes it (`input.converse`): the parts the model reads.
        Sampling and the output cap are left out, as CountTokens has no field for them; Bedrock answers a
        ValidationException for a model it cannot count (not every model can)."""
        from botocore.exceptions import BotoCoreError, ClientError

        unshaped = replace(request, max_tokens=None, temperature=None, top_p=None, top_k=None, stop=[], user=None)
        params = to_converse_params(unshaped)  # refuses unsupported fields before any call
        converse = {key: params[key] for key in COUNTED if key in params}
        try:
            result = self._client(self._region_for(request)).count_tokens(
                modelId=params["modelId"], input={"converse": converse}
            )
        except (ClientError, BotoCoreError) as exc:
            raise map_bedrock_error(exc) from exc
        # What botocore read of the count `check_answered_count` took as sent (missing for a body that is no JSON).
        return answered_count(result.get("inputTokens"), "Bedrock", "inputTokens")

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        from botocore.eventstream import ParserError
        from botocore.exceptions import BotoCoreError, ClientError
        from urllib3.exceptions import HTTPError

        if request.native_body is not None:  # InvokeModel's answer comes whole (the gateway streams none of these)
            yield StreamChunk(response=self._invoke_prompt(request))
            return
        params = to_converse_params(request)
        asked_stop = ask_stop_sequence(request, params)
        start = time.perf_counter()
        ttft = None
        stop_reason = None
        usage = trace = fields = None
        raw: dict[str, Any] = {}
        assembler = ConverseStreamAssembler()
        try:
            result = self._client(self._region_for(request)).converse_stream(**params)
            raw["request_id"] = result.get("ResponseMetadata", {}).get("RequestId")
            for event in result["stream"]:
                chunk = None
                if "contentBlockStart" in event:
                    started = assembler.start(event["contentBlockStart"])
                    if started is not None:
                        chunk = StreamChunk(tool_call=ToolCallDelta(started[0], started[1], started[2]))
                elif "contentBlockDelta" in event:
                    chunk = delta_chunk(*assembler.delta(event["contentBlockDelta"]))
                elif "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason")
                    fields = event["messageStop"].get("additionalModelResponseFields")
                elif "metadata" in event:
                    usage = event["metadata"].get("usage")
                    trace = event["metadata"].get("trace")
                    raw["server_latency_ms"] = (event["metadata"].get("metrics") or {}).get("latencyMs")
                if chunk is not None:
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000
                    yield chunk
        except (ClientError, BotoCoreError, HTTPError, ParserError) as exc:
            raise map_bedrock_error(exc) from exc
        if stop_reason is None:  # the body ended before messageStop: part of an answer, not an answer
            # It was answered 200, so it is billed (its prompt at least) even when no content came: `reached`.
            raise ProviderError(
                "Bedrock stream ended before the answer was complete (no messageStop)",
                kind="server_error",
                reached=True,
            )
        latency = (time.perf_counter() - start) * 1000
        yield StreamChunk(
            response=self._response(
                request, assembler.content(), stop_reason, usage, trace, latency, ttft, raw, fields, asked_stop
            )
        )

    def embed(
        self, body: dict[str, Any], region: str | None = None, progress: bedrock_embeddings.Progress | None = None
    ) -> dict[str, Any]:
        """OpenAI's embeddings request (`model` the Bedrock model id, checked by `bedrock_embeddings.refusal`) through
        InvokeModel in `region`, sending only the calls an earlier attempt left unanswered (`progress`); the answer
        in OpenAI's shape (`bedrock_embeddings`)."""
        from botocore.exceptions import BotoCoreError, ClientError
        from urllib3.exceptions import HTTPError

        model_id = body["model"]
        client = self._client(pricing_region(region) or self.region)

        def invoke(call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            try:
                result = client.invoke_model(
                    modelId=model_id, body=json.dumps(call), contentType="application/json", accept="application/json"
                )
                raw = result["body"].read()
            except (ClientError, BotoCoreError, HTTPError) as exc:
                raise map_bedrock_error(exc) from exc
            headers = (result.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
            return bedrock_embeddings.decode(raw), headers

        return bedrock_embeddings.embed(invoke, body, model_id, progress)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
