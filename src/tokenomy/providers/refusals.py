"""What a provider cannot take, found before any call: `Unsupported` names it and its place in the request, and the
request-wide checks find it (pass-through fields an API must carry or refuse, OpenAI's options Claude's APIs lack, a
tool choice allowing an undeclared tool, `max_tokens: 0`, a 1-hour cache point, a freeform tool, Anthropic's server
tools and tool fields). The checks of content blocks are `block_refusals`; Claude's rules for a request that thinks
are `claude_thinking_rules`. Each provider asks them in `Provider.refusal`; the gateway and the client ask them for
every model a route may reach, so nothing is sent to a model that would drop it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tokenomy import request_views
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, ToolUseBlock

# Pass-through fields at a value that asks nothing of an API without them: OpenAI-format servers get them as sent,
# every other API leaves them out rather than refusing a request it can serve as asked (an app's SDK sends them with
# every call). Null, for any field (OpenAI's API reference types each optional field nullable, null its default); and
# OpenAI's documented defaults: `store: false` (nothing kept; the OpenAI Agents SDK's ModelSettings(store=False)),
# `service_tier` "auto" (its default: standard unless the project bought Scale Tier) or "default", the tier Claude,
# Bedrock and Gemini serve when none is named (Anthropic's own "auto" is its default too); `prompt_cache_retention`
# "in_memory" (minutes, as Claude's and Bedrock's 5-minute cache points keep); `modalities: ["text"]` (a text answer,
# all these APIs give), `n: 1`, `logprobs: false`, `top_logprobs: 0`, `metadata: {}` (no tags), `logit_bias: {}`
# (no bias). Any other value (a flex tier, "24h", audio out, n=2, a tag, a bias) still reaches the provider's
# mapping, which carries it or refuses it by name.
ASK_NOTHING_AT: dict[str, tuple[Any, ...]] = {
    "store": (False,),
    "service_tier": ("default", "auto"),
    "prompt_cache_retention": ("in_memory",),
    "modalities": (["text"],),
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "metadata": ({},),
    "logit_bias": ({},),
}


def blocks_nothing(settings: Any) -> bool:
    """Whether Gemini's `safetySettings` only turn its filters off (OFF or BLOCK_NONE for each category it names).
    Instructor's `from_genai` sends one with every category OFF on each call."""
    return isinstance(settings, list) and all(
        isinstance(s, dict) and s.get("threshold") in ("OFF", "BLOCK_NONE") for s in settings
    )


# Gemini's own pass-through fields at a value that asks nothing of a model without them: Gemini's mapping carries
# them as sent (`GEMINI_OWN`), and every other API leaves them out, an OpenAI-format one too (OpenAI's API has no
# such field). `safety_settings` that turn every filter they name off: the other providers have no such filters to
# turn off (OFF is the default threshold Google documents for its current models; older ones block some by default,
# which is why Gemini still gets the settings).
GEMINI_ASKING_NOTHING: dict[str, Callable[[Any], bool]] = {"safety_settings": blocks_nothing}
# Where a JSON schema for the answer goes, named in the remedy for JSON with no schema: each ingress renames it to its
# caller's field (Gemini's generationConfig.responseJsonSchema, the Responses API's text.format.schema).
JSON_SCHEMA = "response_format.json_schema"
GEMINI_OWN: Mapping[str, tuple[Any, ...] | Callable[[Any], bool]] = GEMINI_ASKING_NOTHING


# The models a seed and penalties reach: OpenAI-format ones, and Gemini's, whose API has them too (generationConfig's
# seed, presencePenalty and frequencyPenalty). "Route to an OpenAI model" sent a Gemini caller away from its own.
TAKE_SEED = "an OpenAI-format or Gemini model"


def refuse_openai_options(
    request: ChatRequest, model: str, refuse: Callable[..., ProviderError], json_instead: str
) -> None:
    """Raise `refuse`'s 400 for OpenAI's options Claude's APIs have no place for: a seed, penalties, and a json_object
    response format (JSON with no schema), whose remedy names the schema's field as `JSON_SCHEMA` for each ingress to
    name the caller's way (`ProviderError.named`), then `json_instead`: what else the caller may do."""
    for field in ("seed", "presence_penalty", "frequency_penalty"):
        value = getattr(request, field)
        # A penalty of 0 is OpenAI's default (its API reference: "Defaults to 0"), which penalises nothing: an app's
        # SDK sends it with every call, and a model without penalties answers as asked (a seed of 0 still asks one).
        if value is not None and not (field != "seed" and value == 0):
            raise refuse(
                model, field, f"has no such parameter; remove it, or route to a model that takes it ({TAKE_SEED})"
            )
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        raise refuse(
            model,
            "response_format",
            f"has no JSON output mode without a schema; send a JSON schema for the answer (`{JSON_SCHEMA}`)"
            f"{json_instead}",
            also=JSON_SCHEMA,
        )


def fields_to_carry(
    extra: dict[str, Any], own: Mapping[str, tuple[Any, ...] | Callable[[Any], bool]] | None = None
) -> dict[str, Any]:
    """The pass-through fields an API other than OpenAI's must carry or refuse: all but those asking nothing, save
    the values `own` names (a tuple of them, or a test of one), which the API has a field of its own for and gets as
    sent (Anthropic's service_tier "auto", Gemini's safety settings that turn filters off)."""
    own = own or {}
    return {k: v for k, v in extra.items() if not _asks_nothing(k, v) or _named(v, own.get(k, ()))}


def without_gemini_own(extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` without Gemini's own fields at a value that asks nothing (`GEMINI_ASKING_NOTHING`): what an
    OpenAI-format model gets."""
    if not any(key in GEMINI_ASKING_NOTHING for key in extra):
        return extra
    return {k: v for k, v in extra.items() if not (k in GEMINI_ASKING_NOTHING and GEMINI_ASKING_NOTHING[k](v))}


def _asks_nothing(key: str, value: Any) -> bool:
    test = GEMINI_ASKING_NOTHING.get(key)
    return value is None or _named(value, ASK_NOTHING_AT.get(key, ())) or (test is not None and test(value))


def _named(value: Any, values: tuple[Any, ...] | Callable[[Any], bool]) -> bool:
    if callable(values):
        return values(value)
    # of the same type: false is not 0, nor 1 true (`n: true` asks for nothing OpenAI takes)
    return any(type(value) is type(kept) and value == kept for kept in values)


def with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


@dataclass(frozen=True, slots=True)
class Unsupported:
    """What of a ChatRequest a provider cannot send, and where it sits in the request.

    The place is kept as indices, not only as text, because the content model is not what a gateway's caller
    sent (opening system messages are lifted out, a run of tool messages is one turn): an ingress translates it
    to the caller's own path (`describe`); `str()` names it in the content model's terms."""

    text: str  # what it is, `{where}` standing for its place: "an image block ({where})", "field `{where}`"
    message: int | None = None  # index in request.messages
    block: int | None = None  # index in that message's content
    part: int | None = None  # index in that block's content (the parts of a tool result)
    # With `message`: a field of that message ("name"). Without: a pass-through key of request.extra, or a request
    # option by its OpenAI name (reasoning_effort) or, lacking one, its ChatRequest slot (reasoning.budget_tokens).
    field: str | None = None
    by: str = "the model"  # who cannot take it, as the error names it: "model `gpt-4o` (openai)"
    # No model takes it (a tool result answering no call): the text is the whole error, its fix in it, whoever `by` is.
    malformed: bool = False

    @property
    def where(self) -> str:
        """The place in the content model's terms: `messages[0].content[1]`, `messages[2].name`, `logit_bias`."""
        if self.message is None:
            return self.field or "the request"
        path = f"messages[{self.message}]"
        if self.block is not None:
            path += f".content[{self.block}]"
            if self.part is not None:
                path += f".content[{self.part}]"
        return f"{path}.{self.field}" if self.field else path

    def describe(self, where: str) -> str:
        """The text with its place named as `where` (an ingress's path for its caller)."""
        return self.text.replace("{where}", where)

    def __str__(self) -> str:
        return self.describe(self.where)

    def error_text(self, where: str) -> str:
        """The whole error, its place named as `where` (the content model's, or an ingress's path for its caller)."""
        what = self.describe(where)
        if self.malformed:
            return what
        return f"{self.by} cannot take {what}; remove it or send the request to a model that supports it"


def raise_refusal(request: ChatRequest, provider: str, why: Unsupported | None) -> None:
    """Raise the client error (HTTP 400 at the gateway) for what `request`'s model cannot take, if anything.
    Nothing was sent: the error carries the refusal, so the attempt plan moves on to a model that can take it."""
    if why is not None:
        why = replace(why, by=f"model `{request.model}` ({provider})")
        raise ProviderError(
            why.error_text(why.where),
            kind="client_error",
            status=400,
            refused=why,
        )


def undeclared_allowed_tool(request: ChatRequest, api: str) -> ProviderError | None:
    """The 400 for a tool choice allowing a tool no tool sent has (`ToolChoice.allowed`), or None: it could not be
    called, and left out unsaid the choice would not be the caller's. The gateway's ingresses refuse it first at the
    caller's place; this is the library caller's."""
    choice = request.tool_choice
    undeclared = choice.undeclared(request.tools) if choice is not None and choice.allowed else None
    if undeclared is None:
        return None
    return ProviderError(
        f"tool_choice: {api} (model {request.model}) is asked to allow tool `{undeclared}`, which is not among the "
        "tools sent; declare it in tools, or leave it out of the allowed tools",
        kind="client_error",
        status=400,
        param="tool_choice",
    )


def allowed_tools_only(request: ChatRequest, api: str) -> ChatRequest:
    """`request` with only the tools its choice allows, for an API with no way to allow some of the tools sent
    (`request_views.allowed_tools_only`); a name no tool has is its 400."""
    choice = request.tool_choice
    if choice is None or not choice.allowed:
        return request
    refused = undeclared_allowed_tool(request, api)
    if refused is not None:
        raise refused
    return request_views.allowed_tools_only(request)


def zero_output_refusal(request: ChatRequest) -> Unsupported | None:
    """`max_tokens: 0` for a model whose API has no call that generates nothing: Anthropic's Messages API takes it
    (a call that only writes the prompt cache); OpenAI-format servers, Bedrock's Converse (maxTokens is at least 1)
    and Gemini have none, and any default cap sent instead would generate, and bill, an answer nobody asked for."""
    if request.max_tokens != 0:
        return None
    return Unsupported(
        "`{where}` 0 (a call that only writes the prompt cache, which only Anthropic's Messages API makes; "
        "ask for 1 token or more)",
        field="max_tokens",
    )


def one_hour_cache_refusal(request: ChatRequest, why: str) -> Unsupported | None:
    """The request's first 1-hour cache point, refused for `why` (what the model lacks), or None if it has none.
    Never sent as a 5-minute point instead: it would be billed, and expire, as one the caller did not ask for."""
    place = request_views.one_hour_cache_point(request)
    if place is None:
        return None
    message, field = place
    return Unsupported(f'a 1-hour cache point (ttl "1h" at `{{where}}`): {why}', message, field=field)


# Claude's cache points a request may hold, on Anthropic's API and Bedrock alike (the catalog's
# cache_max_checkpoints): one more is refused by the API after the call was sent, budgeted and recorded.
MAX_CACHE_POINTS = 4


def cache_points_refusal(request: ChatRequest, limit: int) -> Unsupported | None:
    """The cache point past `limit`, in the order a prompt is cached (the tool list's, the system prompt's, each
    message's, an Anthropic caller's top-level `cache_control` on the last block), or None."""
    places: list[Unsupported] = []  # (built only for a request with more points than the limit: a rare one)
    count = bool(request.tools_cache_point) + bool(request.system_cache_point) + len(request.system_breaks)
    count += sum(bool(m.cache_point) + len(m.block_points) for m in request.messages if m.cache_point or m.block_points)
    count += isinstance(request.extra.get("cache_control"), dict)
    if count <= limit:
        return None
    why = f"cache point {limit + 1} (`{{where}}`; a request takes at most {limit}, the tools', the system prompt's "
    why += "and the messages' counted together)"
    if request.tools_cache_point:
        places.append(Unsupported(why, field="tools"))
    places += [Unsupported(why, field="system")] * (len(request.system_breaks) + bool(request.system_cache_point))
    for i, message in enumerate(request.messages):
        places += [Unsupported(why, i, j, field="cache_control") for j, _ in message.block_points]
        if message.cache_point:
            last = len(message.content) - 1
            places.append(Unsupported(why, i, last, field="cache_control") if last >= 0 else Unsupported(why, i))
    places.append(Unsupported(why, field="cache_control"))  # the top-level one: the last there is
    return places[limit]


# Why a model other than an OpenAI-format one is refused a freeform tool or call, and what to send instead: raw text
# under a grammar has no counterpart in its API, and turning it into a function tool would change what the model
# writes and what the caller's tool receives.
FREEFORM_FIX = (
    "it has no freeform tools; declare a function tool taking a string instead (Codex: `[features] "
    "apply_patch_freeform = false`)"
)


def freeform_refusal(request: ChatRequest) -> Unsupported | None:
    """The request's first freeform tool (`tools[0].type`) or freeform call, for a model without freeform tools."""
    for i, tool in enumerate(request.tools):
        if tool.freeform is not None:
            return Unsupported(f"a freeform (custom) tool (`{{where}}`): {FREEFORM_FIX}", field=f"tools[{i}].type")
    for i, message in enumerate(request.messages):
        if message.role != "assistant":
            continue
        for j, block in enumerate(message.content):
            if isinstance(block, ToolUseBlock) and block.freeform:
                return Unsupported(f"a freeform (custom) tool call ({{where}}): {FREEFORM_FIX}", i, j)
    return None


def server_tools_refusal(request: ChatRequest) -> Unsupported | None:
    """The first server tool of `request` (ToolSpec.server: Anthropic's web search), for a provider whose API runs
    none: another API's mapping would send it as a function the caller never implemented."""
    for i, tool in enumerate(request.tools):
        if tool.server is not None:
            return Unsupported(
                f"Anthropic's server tool {tool.server.get('type')!r} (`{{where}}`), which only Anthropic's API runs",
                field=f"tools[{i}].type",
            )
    return None


# A tool field of Anthropic's that asks only for what every other API does anyway: a tool's input streamed as the
# model writes it, unbuffered. Another provider answers it without the field.
STREAMING_HINTS = frozenset({"eager_input_streaming"})


def anthropic_tool_fields_refusal(request: ChatRequest) -> Unsupported | None:
    """The first tool field only Anthropic's API reads (ToolSpec.anthropic: `defer_loading`, `input_examples`), for
    a provider whose API has no such field; a streaming hint is not one (`STREAMING_HINTS`)."""
    for i, tool in enumerate(request.tools):
        for key in tool.anthropic or {}:
            if key not in STREAMING_HINTS:
                return Unsupported("a tool field only Anthropic's API reads (`{where}`)", field=f"tools[{i}].{key}")
    return None
