"""What a record keeps when it is rebuilt for a backend that does not take its line's form as written.

An OpenAI batch line goes to an OpenAI or Azure batch as written, and a Bedrock line to a Bedrock job whose model takes
its body (a Claude body to a Claude job; a prompt body, Llama's, Mistral's or Titan Text's, which has no messages to
rebuild from, to its own family's job only: anywhere else it is refused whole). Sent anywhere else, the record is
rebuilt from what formats.py reads of it: its messages' roles and text, system, max_tokens and temperature. Any other
key would be lost on the way, so each is refused by name (a bad line naming the line and the key). CARRIED is that
list, per source form: a key not in it, one a provider adds later included, is refused until a rebuild maps it and it
is named here. An OpenAI body's two caps are one in a rebuild (max_tokens), as are a Bedrock body's max_tokens, its
inferenceConfig's and Llama's max_gen_len: a different second cap is refused too, and so is a Bedrock
body's temperature beside a different one in its inferenceConfig. An OpenAI line sent as written may
not give both caps at all, even equal: OpenAI refuses the pair; nor may a Bedrock line sent as written give a cap its
body does not take (a Claude or Mistral body's is max_tokens, a Llama body's max_gen_len, a Titan body's
textGenerationConfig.maxTokenCount): Bedrock refuses it.
"""

from __future__ import annotations

from typing import Any

from tokenomy.batch.formats import BadLine, BatchRecord
from tokenomy.batch.line_messages import NOT_AN_OBJECT, OTHER_TYPE, first_non_text_part
from tokenomy.batch.native_bodies import PROMPT_FIELD, body_written_for, mistral_sign
from tokenomy.errors import UsageError, as_written

# Per source form, the keys a rebuild carries at each place of the line: the body, each message, each content part
# (a part's `type` must be "text"), and a Bedrock body's inferenceConfig. An OpenAI body's `model` is replaced by the
# job's --model, as it is when sent as written (validate notes a line naming another model).
CARRIED: dict[str, dict[str, tuple[str, ...]]] = {
    "openai": {
        "body": ("messages", "max_tokens", "max_completion_tokens", "temperature", "model"),
        "message": ("role", "content"),
        "part": ("type", "text"),
    },
    "bedrock": {
        # anthropic_version and schemaVersion only say which body this is; a rebuilt body writes its own.
        "modelInput": (
            "messages",
            "system",
            "max_tokens",
            "temperature",
            "inferenceConfig",
            "anthropic_version",
            "schemaVersion",
            "max_gen_len",
        ),
        "inferenceConfig": ("maxTokens", "max_new_tokens", "temperature"),
        "message": ("role", "content"),
        "part": ("type", "text"),
    },
}
BODY = {"openai": "body", "bedrock": "modelInput"}
# The roles a rebuild sends (an OpenAI `developer` message as the system prompt, as line_messages.py reads it).
REBUILT_ROLES = ("user", "assistant", "system", "developer")
WHAT_IS_KEPT = {
    "openai": "an OpenAI batch line from its messages (role and text), max_tokens and temperature",
    "bedrock": "a Bedrock line whose body is not for it from its messages (role and text), system, max_tokens and "
    "temperature",
}
TO_KEEP_IT = {
    "openai": "send the line with --backend openai or azure",
    "bedrock": "send the line to a Bedrock job whose model takes this body as written",
}


def _parts(content: Any, at: str, carried: tuple[str, ...]) -> tuple[str, str] | None:
    """The first part of a content (or a Bedrock system) list a rebuild would not send: (field, what is wrong)."""
    if not isinstance(content, list):
        return None  # a string is all text; anything else formats.py has already refused
    found = first_non_text_part(content, at, carried)
    if found is None:
        return None
    where, why, part = found
    if why == NOT_AN_OBJECT:  # read as no text at all
        return where, "parts that are not objects are not sent"
    if why == OTHER_TYPE:
        return where, f"{part['type']!r} parts are not sent"
    return where, "not sent"


def _first_uncarried(rec: BatchRecord) -> tuple[str, str] | None:
    carried = CARRIED.get(rec.fmt)
    if carried is None:  # a plain record: formats.py took only the keys every backend sends
        return None
    top = BODY[rec.fmt]
    body = rec.raw[top]
    unknown = next((key for key in body if key not in carried[top]), None)
    if unknown is not None:
        return f"{top}.{unknown}", "not sent"
    inference = body.get("inferenceConfig") or {}
    unknown = next((key for key in inference if key not in carried.get("inferenceConfig", ())), None)
    if unknown is not None:
        return f"{top}.inferenceConfig.{unknown}", "not sent"
    found = _parts(body.get("system"), f"{top}.system", carried["part"])  # Bedrock's list of system blocks
    if found is not None:
        return found
    for i, message in enumerate(body["messages"]):
        if message.get("role") not in REBUILT_ROLES:  # a tool's answer: no rebuild has a turn for it
            return f"{top}.messages[{i}].role", f"{message.get('role')!r} messages are not sent"
        unknown = next((key for key in message if key not in carried["message"]), None)
        if unknown is not None:
            return f"{top}.messages[{i}].{unknown}", "not sent"
        found = _parts(message.get("content"), f"{top}.messages[{i}].content", carried["part"])
        if found is not None:
            return found
    return None


# Where each form's line may give its cap, in the order formats.py reads them: a rebuild sends the first one given.
CAPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "openai": (("max_tokens",), ("max_completion_tokens",)),
    "bedrock": (
        ("max_tokens",),
        ("inferenceConfig", "maxTokens"),
        ("inferenceConfig", "max_new_tokens"),
        ("max_gen_len",),
        ("textGenerationConfig", "maxTokenCount"),
    ),
}


# Where a Bedrock body may give its temperature, in the order formats.py reads them (a prompt body's, in Titan's
# textGenerationConfig, is never rebuilt): a rebuild sends the first one given. An OpenAI body and a plain record have
# one place for it.
TEMPERATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "bedrock": (("temperature",), ("inferenceConfig", "temperature"))
}


def _caps_given(rec: BatchRecord, places: dict[str, tuple[tuple[str, ...], ...]] = CAPS) -> list[tuple[str, Any]]:
    """Each cap the line gives (or each value of other `places`), as (field, value), in the order formats.py reads
    them (null is none)."""
    if rec.fmt not in places:  # a plain record has one cap
        return []
    body = rec.raw[BODY[rec.fmt]]
    given = []
    for path in places[rec.fmt]:
        value = body.get(path[0]) if len(path) == 1 else (body.get(path[0]) or {}).get(path[1])
        if value is not None:
            given.append((".".join((BODY[rec.fmt], *path)), value))
    return given


def _caps_apart(
    rec: BatchRecord, places: dict[str, tuple[tuple[str, ...], ...]] = CAPS
) -> tuple[tuple[str, Any], tuple[str, Any]] | None:
    """The line's first cap (or value of other `places`) and a second one different from it, each as (field, value);
    None for one, or the same one twice (a rebuild sends it once)."""
    given = _caps_given(rec, places)
    second = next((cap for cap in given[1:] if cap[1] != given[0][1]), None)
    return None if second is None else (given[0], second)


def _second_cap(rec: BatchRecord, target: str) -> BadLine | None:
    """A second cap on the line, different from the first (OpenAI's max_tokens and max_completion_tokens, Bedrock's
    max_tokens and inferenceConfig's), or a second temperature (a Bedrock body's and its inferenceConfig's): a
    rebuild sends one of each, the first, and would drop the other unsaid."""
    apart = _caps_apart(rec) or _caps_apart(rec, TEMPERATURES)
    if apart is None:
        return None
    (kept, kept_value), (field, value) = apart
    reason = (
        f"{target} rebuilds {WHAT_IS_KEPT[rec.fmt]}, so {field} ({as_written(value)}) would not be sent beside "
        f"{kept} ({as_written(kept_value)}); give one of them, or {TO_KEEP_IT[rec.fmt]}"
    )
    return BadLine(rec.line, field, reason)


# Which cap a Bedrock body sent as written takes, by its shape: Bedrock refuses a key the model's body does not take,
# so any other cap is refused there, while Tokenomy would price the first one read.
_OWN_CAP = {
    "anthropic": ("a Claude body", "modelInput.max_tokens"),
    "nova": ("a Nova body", "modelInput.inferenceConfig.max_new_tokens"),
    "llama": ("a Llama body", "modelInput.max_gen_len"),
    "mistral": ("a Mistral body", "modelInput.max_tokens"),
    "titan": ("a Titan body", "modelInput.textGenerationConfig.maxTokenCount"),
}
_CONVERSE_CAP = ("a Converse body", "modelInput.inferenceConfig.maxTokens")


def _other_cap_as_written(rec: BatchRecord) -> BadLine | None:
    """A Bedrock line, sent as written, with a cap its body's shape does not take (beside its own or alone), or a
    Claude body with none: Bedrock's Claude body requires max_tokens, as Anthropic's Messages API does."""
    written_for = body_written_for(rec.raw["modelInput"])
    shape, own = _OWN_CAP.get(written_for, _CONVERSE_CAP)
    given = _caps_given(rec)
    other = next((cap for cap in given if cap[0] != own), None)
    if other is None and written_for == "anthropic" and not given:
        reason = (
            "missing: a Bedrock line is sent as written, and a Claude body requires max_tokens (Bedrock refuses the "
            "record, after the job ran); add it, at most the model's maximum output"
        )
        return BadLine(rec.line, own, reason)
    if other is None:
        return None
    field, value = other
    kept = next((cap for cap in given if cap[0] == own), None)
    beside = "" if kept is None else f" beside {kept[0]} ({as_written(kept[1])})"
    fix = f"move it to {own}" if kept is None else f"give one cap, in {own}"
    reason = (
        f"{field} ({as_written(value)}){beside}: a Bedrock line is sent as written, and {shape} takes its cap in "
        f"{own} only (Bedrock refuses the record, after the job ran); {fix}"
    )
    return BadLine(rec.line, field, reason)


# Sampling options a Converse body may hold only in its inferenceConfig (or, Claude's top_k, in
# additionalModelRequestFields): at the top, as Claude's, Llama's or Mistral's bodies hold them, Converse has no such
# field, so the option is not applied, while Tokenomy read the temperature as the record's.
_CONVERSE_PLACE = {
    "temperature": "modelInput.inferenceConfig.temperature",
    "top_p": "modelInput.inferenceConfig.topP",
    "stop_sequences": "modelInput.inferenceConfig.stopSequences",
    "stop": "modelInput.inferenceConfig.stopSequences",
    "top_k": "modelInput.additionalModelRequestFields.top_k",
}


def _misplaced_converse_option(rec: BatchRecord) -> BadLine | None:
    """A Converse body, sent as written, with a sampling option at its top (`_CONVERSE_PLACE`), named with where it
    goes."""
    body = rec.raw["modelInput"]
    if body_written_for(body) != "converse":
        return None
    key = next((key for key in _CONVERSE_PLACE if key in body), None)
    if key is None:
        return None
    reason = (
        f"{as_written(body[key])}: a Bedrock line is sent as written, and a Converse body has no {key} at its top (it "
        f"would not be applied); move it to {_CONVERSE_PLACE[key]}"
    )
    return BadLine(rec.line, f"modelInput.{key}", reason)


def two_caps_as_written(rec: BatchRecord) -> BadLine | None:
    """A line sent as written whose caps its provider refuses, as a bad line naming the cap and the fix, found before
    the batch is made and waited for. An OpenAI line (to OpenAI, Azure) with both max_tokens and
    max_completion_tokens: OpenAI refuses every such request, whatever the two values, with a 400 ("Setting
    'max_tokens' and 'max_completion_tokens' at the same time is not supported", invalid_parameter_combination). A
    Bedrock line (to a job of its body's kind) with a cap its body does not take (`_other_cap_as_written`), or a
    Converse body with a sampling option outside its inferenceConfig (`_misplaced_converse_option`). A
    rebuild, which sends one cap itself, refuses only two different caps (`_second_cap`)."""
    if rec.fmt == "bedrock":
        return _other_cap_as_written(rec) or _misplaced_converse_option(rec)
    given = _caps_given(rec) if rec.fmt == "openai" else []
    if len(given) < 2:
        return None
    (kept, kept_value), (field, value) = given[:2]
    reason = (
        f"{field} ({as_written(value)}) beside {kept} ({as_written(kept_value)}): an OpenAI batch line is sent as "
        "written, and OpenAI refuses a request that sets both (\"Setting 'max_tokens' and 'max_completion_tokens' at "
        'the same time is not supported"); give one of them'
    )
    return BadLine(rec.line, field, reason)


def require_one_cap(rec: BatchRecord) -> None:
    """Refuse, naming the record and the cap, a line sent as written with caps its provider refuses
    (`two_caps_as_written`): validation skips such lines, so this is the guard for one that reached a body builder
    some other way."""
    bad = two_caps_as_written(rec)
    if bad is not None:
        raise UsageError(f"record {rec.id!r} (line {rec.line}): {bad.field}: {bad.reason}")


# Each prompt body's family as a person names it, and a model of it on Bedrock, named in the fix for a prompt line
# sent elsewhere.
PROMPT_FAMILIES = {
    "llama": ("Llama", "meta.llama3-1-8b-instruct-v1:0"),
    "mistral": ("Mistral", "mistral.mistral-large-2407-v1:0"),
    "titan": ("Titan Text", "amazon.titan-text-express-v1"),
}


def prompt_family_name(rec: BatchRecord) -> str | None:
    """Llama, Mistral or Titan Text for a Bedrock line in one of their prompt bodies (native_bodies.py), else None."""
    if rec.fmt != "bedrock":
        return None
    family = PROMPT_FAMILIES.get(body_written_for(rec.raw["modelInput"]))
    return None if family is None else family[0]


def prompt_rebuilt(rec: BatchRecord, target: str) -> BadLine | None:
    """A Bedrock line in a prompt body of its model's own (Llama's or Mistral's `prompt`, Titan Text's `inputText`,
    with its chat template) that `target` would have to rebuild, as a bad line naming the prompt and the fix; None for
    any other line. Only its own family's job takes that body, as written: made into messages, its turns would be
    guessed from the template, and a guess is not sent."""
    if rec.fmt != "bedrock":
        return None
    body = rec.raw["modelInput"]
    family = body_written_for(body)
    if family not in PROMPT_FAMILIES:
        return None
    name, model = PROMPT_FAMILIES[family]
    field = f"modelInput.{PROMPT_FIELD[family]}"
    sign = mistral_sign(body) if family == "mistral" else None
    read_as = f" (read as Mistral's by {sign})" if sign else ""
    reason = (
        f"{target} would make this {name} prompt{read_as} into messages, guessing its turns from its chat template, "
        f"so it is not sent (a {name} prompt goes as written to a {name} model's Bedrock job only); write the line "
        f"with modelInput.messages, or use a {name} model on Bedrock (--backend bedrock --model {model})"
    )
    return BadLine(rec.line, field, reason)


def uncarried(rec: BatchRecord, target: str) -> BadLine | None:
    """The record's line as a bad line naming the first key a rebuild for `target` (e.g. "--backend gemini") would
    not send (a prompt body as a whole: `prompt_rebuilt`), or None when the rebuild carries every key."""
    prompt = prompt_rebuilt(rec, target)
    if prompt is not None:
        return prompt
    found = _first_uncarried(rec)
    if found is None:
        return _second_cap(rec, target)
    field, problem = found
    # A part of another type is named by its `type`, and it is the whole part that would be lost.
    part = "this message" if field.endswith(".role") else "this part"
    lead, lost = ("", "this key") if problem == "not sent" else (f"{problem}: ", part)
    reason = f"{lead}{target} rebuilds {WHAT_IS_KEPT[rec.fmt]}, so {lost} would not be sent"
    return BadLine(rec.line, field, f"{reason}; remove it, or {TO_KEEP_IT[rec.fmt]}")


def require_carried(rec: BatchRecord, target: str) -> None:
    """Refuse, naming the record and key, a record whose rebuild for `target` would leave a key out: validation
    skips such lines, so this is the guard for a record that reached a body builder some other way."""
    bad = uncarried(rec, target)
    if bad is not None:
        raise UsageError(f"record {rec.id!r} (line {rec.line}): {bad.field}: {bad.reason}")
