"""What the Anthropic Messages API mapping refuses, before any call, with an error naming the field and the fix.

Kept apart from `anthropic_mapping`, which translates shapes: these checks only refuse, so what the gateway will not
send to Claude reads in one place. Refused: seed, presence/frequency penalties, a json_object response format (a
json_schema one becomes Claude's structured output), a reasoning effort or adaptive thinking for a model that takes
none (`claude_effort`), an effort Claude has no level for, fast mode (`speed: "fast"`) on a model without it
(`claude_speed`), pass-through fields Anthropic bills at prices the catalog lacks (US `inference_geo`), a
cache_control ttl other than 5m or 1h, a thinking budget Claude refuses (under 1,024 tokens, or not under
max_tokens without interleaved thinking), and a request's content-block field the content model has no place for (it
would be dropped); and of the request's blocks (`refuse_blocks`, which the mapping asks of each block it meets too),
an image's detail setting (a content document's images' too), a document by URL that is no PDF, a document's bytes
Claude cannot read (a format other than PDF and text, text that is not UTF-8) and reasoning Claude did not sign. A
message's participant `name` and blocks Claude cannot read are refused where the mapping meets them, with `refuse`.
"""

from __future__ import annotations

from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import ONE_HOUR, ChatRequest, DocumentBlock, ImageBlock, ReasoningBlock
from tokenomy.providers.block_refusals import place, placed_blocks, refuse_image_detail
from tokenomy.providers.claude_effort import BUDGET, EFFORTS, NO_ADAPTIVE, no_effort, takes_adaptive, takes_effort
from tokenomy.providers.claude_schema import schema_refusal
from tokenomy.providers.claude_speed import needs_fast_beta, no_fast_mode
from tokenomy.providers.claude_thinking_rules import (
    FORCED_WITH_THINKING,
    budget_refused_while_thinking,
    forces_tool_while_thinking,
    sampling_refused_while_thinking,
)
from tokenomy.providers.refusals import refuse_openai_options
from tokenomy.request_options import Reasoning


def refuse(model: str, field: str, why: str, also: str | None = None) -> ProviderError:
    """The 400 for a request's `field` (with `also`, named in `why`), which the Messages API (of `model`) cannot
    take, saying `why` and the fix."""
    return ProviderError(
        f"{field}: the Anthropic Messages API (model {model}) {why}",
        kind="client_error",
        status=400,
        param=field,
        also=also,
    )


# The keys each block carries (cache_control is read by the caller, anthropic_inbound); a type not here is a provider
# block to the mapping (a server tool's). In a request, any other key would be dropped, so it is refused unless null
# (the SDK's Optional fields' unset); an answer's extras are not.
BLOCK_KEYS = {
    "text": {"text", "citations"},
    "image": {"source"},
    "document": {"source", "title", "context", "citations"},
    "tool_use": {"id", "name", "input"},
    "tool_result": {"tool_use_id", "content", "is_error"},
    "thinking": {"thinking", "signature"},
    "redacted_thinking": {"data"},
}
# The keys of each image or document source the mapping reads: any other would be dropped, so a request's is refused.
SOURCE_KEYS = {
    "base64": {"type", "media_type", "data"},
    "url": {"type", "url"},
    "text": {"type", "media_type", "data"},
    "file": {"type", "file_id"},
    "content": {"type", "content"},
}


def refuse_uncarried_fields(item: dict[str, Any], here: str) -> None:
    """Raise ValueError naming a request block's field (or its source's) the mapping would drop."""
    kind = item.get("type")
    if not (isinstance(kind, str) and kind in BLOCK_KEYS):
        return
    for key, value in item.items():
        # A null is the SDK's unset (`citations: None`, `context: None`): it asks for nothing to carry.
        if value is not None and key not in BLOCK_KEYS[kind] and key not in ("type", "cache_control"):
            raise ValueError(f"{here}.{key}: the gateway cannot carry this field of a {kind} block; remove it")
    source = item.get("source")
    source_kind = source.get("type") if isinstance(source, dict) else None
    source_kind = source_kind if isinstance(source_kind, str) else None  # a list or object is no kind
    if kind in ("image", "document") and isinstance(source, dict) and source_kind in SOURCE_KEYS:
        for key, value in source.items():
            if value is not None and key not in SOURCE_KEYS[source_kind]:
                raise ValueError(
                    f"{here}.source.{key}: the gateway cannot carry this field of a {source_kind} source; remove it"
                )


# Pass-through fields (`extra`, e.g. the gateway's /v1/messages) with which Anthropic bills the call at prices the
# ledger would not record: refused, naming the field, until the catalog has those prices (as Bedrock's serviceTier).
# A value each may keep, billed at the standard price, is named with it. Fast mode (`speed: "fast"`) is priced, at the
# catalog's fast_mode tier, on the models that have it (claude_speed), and refused, naming the model, for the others.
UNPRICED_EXTRA = {
    "inference_geo": (
        "global",
        "bills US-only inference at 1.1 times the standard price, which Tokenomy's catalog does not have",
    ),
}


def _refuse_unpriced_extra(request: ChatRequest, model: str) -> None:
    speed = request.extra.get("speed")
    if speed not in (None, "standard", "fast"):
        raise refuse(model, "speed", f'takes "standard" or "fast" (got {speed!r})')
    if speed == "fast" and needs_fast_beta(model) is None:  # the others' fast mode is priced (the fast_mode tier)
        raise refuse(model, "speed", no_fast_mode(model))
    for field, (standard, why) in UNPRICED_EXTRA.items():
        value = request.extra.get(field)
        if value is not None and value != standard:
            raise refuse(
                model,
                field,
                f"{why}; remove {field} or send {standard!r} (the call would be recorded at the wrong price)",
            )
    # A top-level cache_control caches the request's last block, for the ttl it names: a 1-hour one is priced from
    # the answer's usage.cache_creation, as a block's is (the client refuses it for a model without a 1-hour price).
    control = request.extra.get("cache_control")
    if isinstance(control, dict) and control.get("ttl", "5m") not in ("5m", ONE_HOUR):
        raise refuse(model, "cache_control.ttl", 'takes "5m" or "1h"')


def free_effort(reasoning: Reasoning | None) -> str | None:
    """The effort the request asks for, unless a thinking budget in tokens rules it (thinking off, a budget of 0,
    leaves it): what is checked here and what the mapping sends must agree."""
    return reasoning.effort if reasoning is not None and not reasoning.budget_tokens else None


def refuse_unsupported(request: ChatRequest, model: str | None = None) -> None:
    """Refuse, naming the field and the fix, what the Messages API has no place for (seed, penalties, a json_object
    format), an effort or adaptive thinking the model does not take, and fields billed at prices the catalog lacks.
    `model`: the model id it would go to, when `request.model` is not it yet (a gateway route's name)."""
    model = model or request.model
    _refuse_unpriced_extra(request, model)
    refuse_openai_options(  # named as each caller sent it
        request, model, refuse, " (Claude enforces it), or describe the JSON in the prompt"
    )
    fmt = request.response_format
    schema = (fmt.schema or {}) if fmt is not None else {}
    if fmt is not None and fmt.description and schema.get("description") not in (None, fmt.description):
        raise refuse(
            model,
            "response_format.json_schema.description",
            "reads a format's description from its schema, and this schema has a different one; keep one of them",
        )
    unheld = schema_refusal(request)  # a schema Claude cannot hold an answer to (claude_schema)
    if unheld is not None:
        raise refuse(model, *unheld)
    if forces_tool_while_thinking(request):
        raise refuse(model, "tool_choice", FORCED_WITH_THINKING, also="thinking")
    sampling = sampling_refused_while_thinking(request)
    if sampling is not None:
        raise refuse(model, *sampling, also="thinking")
    budget = budget_refused_while_thinking(request, model)
    if budget is not None:
        raise refuse(model, *budget)
    reasoning = request.reasoning
    effort = free_effort(reasoning)
    if effort is not None and takes_effort(model) is False:  # as on Bedrock (converse_mapping)
        raise refuse(model, "reasoning_effort", no_effort(model), also=BUDGET)
    native = request.extra.get("output_config")  # an Anthropic caller's own effort, passed through
    if isinstance(native, dict) and native.get("effort") is not None and takes_effort(model) is False:
        raise refuse(model, "output_config.effort", no_effort(model), also=BUDGET)
    if reasoning is not None and reasoning.adaptive and takes_adaptive(model) is False:
        raise refuse(model, "thinking", NO_ADAPTIVE, also=BUDGET)
    sent = effort is not None and reasoning is not None and (reasoning.adaptive or takes_effort(model))
    if sent and effort not in EFFORTS:  # Anthropic's API would refuse it after the gateway had sent the call
        raise refuse(
            model,
            "reasoning_effort",
            f"takes an effort of {', '.join(EFFORTS)} (got {effort!r}); send one of those, or leave the effort out",
        )
    if effort is not None and reasoning is not None and not reasoning.adaptive and not takes_effort(model):
        raise refuse(
            model,
            "reasoning_effort",
            "takes an effort level with adaptive thinking (Claude 4.6 and later), or a thinking budget in tokens "
            f"(`{BUDGET}`)",
            also=BUDGET,
        )


# The document formats Claude reads as text: a text source, a JSON string, so their bytes must be UTF-8 text.
TEXT_DOCUMENTS = {"txt", "md", "csv", "html"}


def document_text(block: DocumentBlock, model: str, where: str) -> str:
    """The text of a document of bytes that is no PDF (a text source's `data`), or the 400 for one Claude cannot read:
    a format other than text, or bytes that are not UTF-8 text."""
    if block.format not in TEXT_DOCUMENTS:
        raise refuse(
            model,
            where,
            f"reads PDF and plain-text documents, not {block.format!r}; convert it to PDF or text first",
        )
    try:
        return (block.data or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(
            model,
            where,
            f"reads {block.format} documents as UTF-8 text, and this one is not ({exc.reason} at byte "
            f"{exc.start}); re-encode it as UTF-8 or send it as a PDF",
        ) from None


# The image types the Messages API reads; it refuses any other ("Input should be image/jpeg, ...").
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def refuse_image(block: ImageBlock, model: str, where: str) -> None:
    """What the Messages API refuses of an image: a detail setting (OpenAI's), and bytes of a type it does not read
    (HEIC, which Gemini reads), refused before the call so a route's model that reads it gets it (the upstream's 400
    named Anthropic's own place, after an attempt)."""
    refuse_image_detail(block, model, where, refuse)
    if block.inline and block.media_type is not None and block.media_type not in IMAGE_TYPES:
        raise refuse(model, where, f"reads jpeg, png, gif or webp images, not {block.media_type!r}; convert it first")


def refuse_document(block: DocumentBlock, model: str, where: str) -> None:
    """What `block_to_anthropic` refuses of a document, in its order: one by URL that is no PDF, an image's detail in
    a content document, and bytes Claude cannot read (`document_text`). A file id is `Provider.refusal`'s."""
    if block.url is not None:
        refuse_url_document(block, model, where)
    elif block.content is not None:
        for n, part in enumerate(block.content):
            if type(part) is ImageBlock:
                refuse_image(part, model, f"{where}.content[{n}]")
    elif block.file_id is None and block.format != "pdf":
        document_text(block, model, where)


def refuse_url_document(block: DocumentBlock, model: str, where: str) -> None:
    """The 400 for a document by URL that is no PDF: Anthropic's url source is a PDF's."""
    if block.format != "pdf":
        raise refuse(
            model,
            f"{where}.source.url",
            f"fetches PDFs by URL, not {block.format!r} documents; send the document's text",
        )


# Reasoning Claude did not sign (e.g. an OpenAI-format caller's reasoning_content): Anthropic checks the signature of
# each thinking block sent back. (Another family's signed reasoning is left out, not refused: `foreign`.)
UNSIGNED = "takes back only thinking it signed; drop the unsigned reasoning"


def unsigned(block: ReasoningBlock) -> bool:
    """Whether `block` is reasoning Claude did not sign (`UNSIGNED`): neither signed nor redacted."""
    return block.redacted is None and not block.signature


CHECKED_BLOCKS = frozenset({ImageBlock, DocumentBlock, ReasoningBlock})


def refuse_blocks(request: ChatRequest, model: str) -> None:
    """What `block_to_anthropic` refuses of the request's blocks (an image's detail, a document it cannot read:
    `refuse_document`, unsigned reasoning), asked before any call (`AnthropicProvider.mapping_refusal`) after
    `refuse_unsupported`, at each block's place as the caller sent it: one pass over the request's blocks."""
    for block, i, j, k in placed_blocks(request, CHECKED_BLOCKS):
        if type(block) is ReasoningBlock:
            if unsigned(block):
                raise refuse(model, place(i, j, k), UNSIGNED)
        elif type(block) is ImageBlock:
            refuse_image(block, model, place(i, j, k))
        elif type(block) is DocumentBlock:
            refuse_document(block, model, place(i, j, k))
