"""What Bedrock's Converse mapping (`converse_mapping`) refuses before any call, with a 400 naming the field, the
model and the fix: seed, presence/frequency penalties, a json_object response format, parallel tool calls off (with
tools), a forced tool while Claude thinks, a thinking budget Claude refuses (under 1,024 tokens, or not under
maxTokens without interleaved thinking), an effort or adaptive thinking the model does not take (`claude_effort`), an
effort Converse has no level for; an image it cannot read (by URL, a format other than png,
jpeg, gif or webp, a detail setting); redacted reasoning that is no base64; a `none` tool choice in a conversation
with tool calls, a conversation with tool calls and no tools (Converse has no `none` choice to declare them with), a
forced one without tools, a cache point in Amazon Nova's tools; pass-through fields it has no
place for (Converse's own fields, those billed at prices the catalog lacks, OpenAI's n > 1, logprobs and other own
fields); and requestMetadata (with the end-user id) that does not fit Bedrock's limits.
`BedrockProvider.mapping_refusal` asks them of a request before any budget; the mapping asks them again at call time,
for a library caller.
Kept apart from the mapping, which translates shapes: these checks only refuse."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, ImageBlock, ReasoningBlock, ToolResultBlock, ToolUseBlock
from tokenomy.pricing.identifiers import takes_no_tools_cache_point
from tokenomy.providers.anthropic_refusals import unsigned
from tokenomy.providers.bedrock_families import body_family
from tokenomy.providers.block_refusals import place, placed_blocks, refuse_image_detail
from tokenomy.providers.claude_effort import BUDGET, EFFORTS, NO_ADAPTIVE, no_effort, takes_adaptive, takes_effort
from tokenomy.providers.claude_schema import schema_refusal
from tokenomy.providers.claude_thinking_rules import (
    FORCED_WITH_THINKING,
    budget_refused_while_thinking,
    forces_tool_while_thinking,
    sampling_refused_while_thinking,
)
from tokenomy.providers.reasoning_signers import bedrock_signer, foreign
from tokenomy.providers.refusals import fields_to_carry, refuse_openai_options


def refuse(model: str, field: str, why: str, also: str | None = None) -> ProviderError:
    """The error for a request field (with `also`, named in `why`) a Converse model cannot take (the caller's fix is
    in `why`)."""
    return ProviderError(
        f"{field}: Bedrock Converse (model {model}) {why}", kind="client_error", status=400, param=field, also=also
    )


IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def image_format(block: ImageBlock, model: str, where: str) -> str:
    """Converse's format of an image it takes (inline png, jpeg, gif or webp, with no detail setting), or its 400."""
    refuse_image_detail(block, model, where, refuse)
    if not block.inline:
        raise refuse(
            model,
            where,
            "takes images as bytes only, not by URL; send the image inline (base64 data) instead of a link",
        )
    fmt = IMAGE_FORMATS.get((block.media_type or "").lower())
    if fmt is None:
        raise refuse(model, where, f"takes png, jpeg, gif or webp images, not {block.media_type!r}")
    return fmt


# Converse's fields the mapping fills from the request itself: a pass-through one would contradict it.
CONVERSE_OWN_FIELDS = ("modelId", "messages", "system", "inferenceConfig", "toolConfig")
# Fields that change the price of the call (a priority or flex tier, latency-optimized inference): the ledger would
# record it at the standard price, so they are refused until the catalog has those prices.
CONVERSE_UNPRICED_FIELDS = {
    "serviceTier": "bills a service tier other than standard at its own price, which Tokenomy's catalog does not "
    "have for Bedrock yet; remove it (the call would be recorded at the wrong price)",
    "performanceConfig": "bills latency-optimized inference at its own price, which Tokenomy's catalog does not "
    "have yet; remove it (the call would be recorded at the wrong price)",
}


# OpenAI fields (the gateway passes them on in `extra`) asking for what a Converse answer has no place for: more than
# one choice, token log probabilities. As additionalModelRequestFields they are refused by some models and ignored by
# others, which answer one choice without log probabilities: refused here, naming the field, for every model.
CONVERSE_UNCARRIED = {
    "n": "answers one choice per call; send n=1 (or several calls)",
    "logprobs": "returns no token log probabilities; remove logprobs",
    "top_logprobs": "returns no token log probabilities; remove top_logprobs",
}


# OpenAI's own request fields (the gateway passes them on in `extra`) that no Converse field carries. Sent on as
# additionalModelRequestFields they would be the model's parameters, which Bedrock refuses only after the call is made
# (a ValidationException naming a field the caller never sent to it): refused here instead, by their OpenAI name, with
# the fix. A model's own parameters (Claude's top_k, thinking, anthropic_beta; Nova's inferenceConfig) still ride.
CONVERSE_OPENAI_ONLY = {
    "verbosity": "has no output verbosity; remove verbosity (ask for brevity in the prompt, or lower max_tokens)",
    "prompt_cache_retention": "caches a prompt at its cache points, not by a retention setting; remove "
    'prompt_cache_retention and mark a cache point (cache_control on a message or tool, ttl "1h" for an hour)',
    "metadata": "has no metadata field the model reads; send the tags as requestMetadata (string to string, with the "
    "openai SDK: extra_body), which Converse keeps in its invocation logs",
    "service_tier": "bills its service tiers (serviceTier) at their own prices, which Tokenomy's catalog does not "
    "have for Bedrock yet; remove service_tier (the call is served at the standard tier)",
    "prediction": "has no predicted outputs; remove prediction",
    "web_search_options": "has no built-in web search; remove web_search_options, or offer a search tool of your own",
    "audio": "answers in text only; remove audio",
    "modalities": 'answers in text only; remove modalities or send ["text"]',
    "logit_bias": "has no token biases; remove logit_bias",
    "safety_identifier": "takes the end-user id as `user` (sent in requestMetadata); send it as user instead",
    "store": "stores no completions; remove store or send false",
    "functions": "takes tools, not the legacy functions; send tools (type function) instead",
    "function_call": "takes tool_choice, not the legacy function_call; send tool_choice instead",
    "moderation": "runs no OpenAI moderation model; remove moderation (Bedrock's own content filters are Guardrails: "
    "send guardrailConfig, with the openai SDK: extra_body)",
    "prompt_cache_options": "caches a prompt at its cache points, with no implicit one to turn off; remove "
    'prompt_cache_options and mark a cache point (cache_control on a message or tool, ttl "1h" for an hour)',
}


def refuse_extra(model: str, key: str, value: Any) -> None:
    """The 400 for a pass-through field Converse has no place for, or would bill at a price the catalog lacks. Asked
    of the fields `fields_to_carry` keeps: one at a value that asks nothing (n=1, modalities ["text"], null: its
    `ASK_NOTHING_AT`) is left out before, as what Converse does anyway."""
    if key in CONVERSE_OWN_FIELDS:
        raise refuse(model, key, "gets this field from the request itself; send the OpenAI field for it instead")
    if key in CONVERSE_UNPRICED_FIELDS:
        raise refuse(model, key, CONVERSE_UNPRICED_FIELDS[key])
    if key in CONVERSE_UNCARRIED:
        raise refuse(model, key, CONVERSE_UNCARRIED[key])
    if key in CONVERSE_OPENAI_ONLY:
        raise refuse(model, key, CONVERSE_OPENAI_ONLY[key])


def redacted_bytes(block: ReasoningBlock, model: str, where: str) -> bytes:
    """Redacted reasoning as Converse carries it, bytes (a redactedContent blob), from the base64 text (either
    alphabet) `ReasoningBlock.redacted` holds; or the 400 for text that is not base64."""
    try:
        return base64.b64decode((block.redacted or "").replace("-", "+").replace("_", "/"), validate=True)
    except ValueError:  # binascii.Error: reached the caller as a 500
        raise refuse(
            model, where, "carries redacted reasoning as bytes, and this block's is not base64; drop the block"
        ) from None


# Bedrock's limits on requestMetadata (botocore's model of the API): 1 to 16 entries, each key 1 to 256 and each
# value at most 256 of these characters. Beyond them, Bedrock refuses the call only once it is made.
METADATA_CHARACTERS = "letters, digits, spaces and :_@$#=/+,-. characters"
_METADATA_KEY = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{1,256}")
_METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")
METADATA_ENTRIES = 16


def request_metadata(user: str | None, given: Any, model: str) -> dict[str, str] | None:
    """Converse's requestMetadata: the caller's own (`given`, passed through) with its end-user id as `user_id`
    (Bedrock's invocation logs can be filtered by it), or None when there is neither; the 400 for what does not fit
    Bedrock's limits. A user id that is a JSON object's text (Claude Code's since 2.1.78: its device, account and
    session ids), which no metadata value can hold, is an entry per key (`user_id.session_id`)."""
    if given is not None and not isinstance(given, dict):
        raise refuse(
            model,
            "requestMetadata",
            f"takes requestMetadata as an object of string keys to string values ({METADATA_CHARACTERS}); send one",
        )
    metadata = dict(given or {})
    for key, value in metadata.items():
        if not (isinstance(key, str) and _METADATA_KEY.fullmatch(key)):
            raise refuse(
                model,
                "requestMetadata",
                f"takes requestMetadata keys of 1 to 256 {METADATA_CHARACTERS}, and {key!r} is not one; rename it",
            )
        if not (isinstance(value, str) and _METADATA_VALUE.fullmatch(value)):
            raise refuse(
                model,
                f"requestMetadata.{key}",
                f"takes requestMetadata values of at most 256 {METADATA_CHARACTERS}; send one of that shape",
            )
    if user is not None:
        entries = {"user_id": user} if _METADATA_VALUE.fullmatch(user) else _object_entries(user)
        if entries is None:
            raise refuse(
                model,
                "user",
                "takes an end-user id in requestMetadata, as at most 256 letters, digits, spaces and :_@$#=/+,-. "
                "characters (or a JSON object of such strings); send one of that shape",
            )
        for key, value in entries.items():  # the caller's own entry of that name would be replaced without a word
            if metadata.get(key, value) != value:
                raise refuse(
                    model,
                    f"requestMetadata.{key}",
                    f"holds the end-user id (`user`) as {key}, and this request gives {key} another value; send one "
                    "of the two",
                )
        metadata.update(entries)
    if len(metadata) > METADATA_ENTRIES:
        raise refuse(
            model,
            "requestMetadata",
            f"takes at most {METADATA_ENTRIES} requestMetadata entries (the end-user id's among them), and this "
            f"request has {len(metadata)}; send fewer",
        )
    return metadata or None


def _object_entries(user: str) -> dict[str, str] | None:
    """A JSON object's text of string values as requestMetadata entries (`user_id.<key>`), or None if it is not one or
    an entry does not fit (requestMetadata holds at most 16)."""
    try:
        found = json.loads(user)
    except ValueError:
        return None
    if not isinstance(found, dict) or not 0 < len(found) <= METADATA_ENTRIES:
        return None
    entries = {f"user_id.{key}": value for key, value in found.items()}
    fits = all(isinstance(v, str) and _METADATA_VALUE.fullmatch(v) for v in entries.values())
    return entries if fits and all(_METADATA_VALUE.fullmatch(k) for k in entries) else None


# Reasoning Claude did not sign (an OpenAI caller's reasoning_content): Converse types reasoningText's signature
# optional, as models that sign nothing (DeepSeek-R1) take their reasoning back unsigned, but Claude checks the
# signature of each reasoning block sent back, on Bedrock as on Anthropic's API, and refuses one without.
UNSIGNED = "takes back only reasoning Claude signed; drop the unsigned reasoning"


def refuse_unsigned(block: ReasoningBlock, model: str, where: str) -> None:
    """Raise the 400 for reasoning without a signature sent to a Claude model (`UNSIGNED`)."""
    if unsigned(block) and bedrock_signer(model) is not None:
        raise refuse(model, where, UNSIGNED)


CHECKED_BLOCKS = frozenset({ImageBlock, ReasoningBlock})


def refuse_content(request: ChatRequest, model: str) -> None:
    """What `to_converse_params` refuses of the request's images, redacted reasoning (but another family's, which the
    mapping leaves out), Claude's unsigned reasoning, pass-through fields and requestMetadata, asked before any call
    (`BedrockProvider.mapping_refusal`) after `refuse_unsupported`: one pass over those blocks, each named at its place
    as the caller sent it."""
    for block, i, j, k in placed_blocks(request, CHECKED_BLOCKS):
        if type(block) is ImageBlock:
            image_format(block, model, place(i, j, k))
        elif type(block) is ReasoningBlock and not foreign(block, bedrock_signer(model)):
            if block.redacted is not None:
                redacted_bytes(block, model, place(i, j, k))
            else:
                refuse_unsigned(block, model, place(i, j, k))
    if request.extra or request.user is not None:
        carried = fields_to_carry(request.extra)
        for key, value in carried.items():
            refuse_extra(model, key, value)
        request_metadata(request.user, carried.get("requestMetadata"), model)


# Converse has no `none` tool choice: the tools are left out, unless the conversation holds tool blocks, which
# Bedrock refuses without toolConfig.
NO_NONE_CHOICE = (
    "has no 'none' tool choice, and a conversation with tool calls must declare its tools; send tool_choice auto "
    "(and ask in the prompt for no tool call) instead"
)
# A conversation with tool calls and no tools (OpenAI takes it, e.g. a final "summarise" turn): Bedrock refuses it
# without toolConfig, and declaring the tools for the gateway would let the model call them (no 'none' choice to
# stop it), which the caller did not ask for. Refused before the call, so a route's fallback that takes it is tried.
UNDECLARED_TOOLS = (
    "requires the tools of a conversation with tool calls to be declared (toolConfig), and has no 'none' tool choice "
    "to keep the model from calling them; send the tools the conversation's calls used, with tool_choice auto"
)
NO_TOOLS_CACHE_POINT = (
    "takes no cache point in its tools (Amazon Nova caches at points in the system prompt and messages); put it after "
    "the system prompt or a message instead: that prefix holds the tools too"
)


def _holds_tool_blocks(request: ChatRequest) -> bool:
    return any(isinstance(b, (ToolUseBlock, ToolResultBlock)) for m in request.messages for b in m.content)


def refuse_tool_config(request: ChatRequest, model: str) -> None:
    """What Converse's toolConfig cannot say of the request's tools and tool choice (`_tool_config` leaves the tools
    out for a `none` choice without tool blocks), and a conversation with tool calls that declares no tools."""
    choice = request.tool_choice
    if choice is not None and choice.mode == "none":
        if _holds_tool_blocks(request):
            raise refuse(model, "tool_choice", NO_NONE_CHOICE)
        return
    if not request.tools:
        if choice is not None and choice.mode != "auto":
            raise refuse(
                model,
                "tool_choice",
                f"cannot force a tool call ({choice.mode}) when no tools are given; send the tools, or leave "
                "tool_choice out",
            )
        if _holds_tool_blocks(request):
            raise refuse(model, "tools", UNDECLARED_TOOLS)
        return
    if request.tools_cache_point and takes_no_tools_cache_point(model):
        raise refuse(model, "tools", NO_TOOLS_CACHE_POINT)


def refuse_unsupported(request: ChatRequest, model: str | None = None) -> None:
    """Refuse, naming the field and the fix, what Converse has no place for (seed, penalties, a json_object format,
    parallel calls off, a forced tool while Claude thinks, what toolConfig cannot say: `refuse_tool_config`) and an
    effort the model does not take. `model`: the model id it would go to, when `request.model` is not it yet (a
    gateway route's name)."""
    model = model or request.model
    if forces_tool_while_thinking(request) and takes_effort(model) is not None:  # a Claude model id
        raise refuse(model, "tool_choice", FORCED_WITH_THINKING, also="thinking")
    sampling = sampling_refused_while_thinking(request) if takes_effort(model) is not None else None
    if sampling is not None:
        raise refuse(model, *sampling, also="thinking")
    budget = budget_refused_while_thinking(request, model) if takes_effort(model) is not None else None
    if budget is not None:
        raise refuse(model, *budget)
    refuse_openai_options(request, model, refuse, ", or describe the JSON in the prompt / use a forced tool")
    if request.parallel_tool_calls is False and request.tools:  # without tools there is nothing to parallelise
        raise refuse(model, "parallel_tool_calls", "cannot turn parallel tool calls off; remove the field")
    refuse_tool_config(request, model)
    unheld = schema_refusal(request) if body_family(model) == "anthropic" else None  # Claude's (claude_schema)
    if unheld is not None:
        raise refuse(model, *unheld)
    effort = request.reasoning.effort if request.reasoning is not None else None
    if effort is not None and takes_effort(model) is False:  # as on Anthropic's API (anthropic_mapping)
        raise refuse(model, "reasoning_effort", no_effort(model), also=BUDGET)
    if request.reasoning is not None and request.reasoning.adaptive and takes_adaptive(model) is False:
        raise refuse(model, "thinking", NO_ADAPTIVE, also=BUDGET)
    native = request.extra.get("output_config")  # Claude's own effort, as an Anthropic caller sends it
    if isinstance(native, dict) and native.get("effort") is not None and takes_effort(model) is False:
        raise refuse(model, "output_config.effort", no_effort(model), also=BUDGET)
    if effort is not None and effort not in EFFORTS:
        raise refuse(
            model,
            "reasoning_effort",
            f"takes an effort of {', '.join(EFFORTS)} (got {effort!r}); send one of those, or a thinking budget in "
            f"tokens (`{BUDGET}`)",
            also=BUDGET,
        )
