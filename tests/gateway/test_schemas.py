"""The request mapping's own checks, against what they stand in for."""

from __future__ import annotations

import base64
import binascii
import random
import re

import pytest

from tokenomy.gateway.openai_images import valid_base64
from tokenomy.gateway.openai_ingress import caller_path, to_messages
from tokenomy.gateway.schemas import ChatCompletionRequest
from tokenomy.messages import ImageBlock
from tokenomy.providers.refusals import Unsupported

# RFC 4648's base64: whole quanta of four characters, `=` padding only in the last one.
CANONICAL = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def strict_decodes(text: str) -> bool:
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def test_the_fast_base64_check_accepts_exactly_rfc_4648_base64():
    rng = random.Random(7)
    samples = [base64.b64encode(rng.randbytes(n)).decode() for n in range(40)]
    samples += ["", "A", "AB", "ABC", "A===", "AB=A", "AB==AB==", "ab c", "AB\n=", "é===", "-_AA", "AA==="]
    alphabet = "ABCab019+/=-_ \n"
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 13))) for _ in range(3000)]
    assert [s for s in samples if valid_base64(s) != bool(CANONICAL.fullmatch(s))] == []
    accepted = [s for s in samples if valid_base64(s)]
    assert all(strict_decodes(s) for s in accepted)  # what passes the check decodes on the provider's side
    assert 100 < len(accepted) < len(samples) - 100  # both outcomes are exercised


def test_an_image_held_as_base64_text_is_decoded_only_when_read():
    data = bytes(range(256))
    held = ImageBlock("image/png", base64=base64.b64encode(data).decode())
    assert held.inline and held.data is None and held.payload() == data
    assert ImageBlock("image/png", data).payload() == data
    by_url = ImageBlock(url="https://example.com/a.png")
    assert not by_url.inline and by_url.payload() is None


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
# Every kind of turn and block, where the content model's indices and the caller's differ.
SENT = ChatCompletionRequest.model_validate(
    {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},  # lifted into ChatRequest.system: no turn
            {"role": "user", "content": "hi"},  # turn 0
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}],
                "reasoning_content": "r",
                "refusal": "no",
                "tool_calls": [CALL, CALL | {"id": "c2"}],
            },  # turn 1: reasoning, content[0], refusal, two tool calls
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},  # turn 2, block 0
            {
                "role": "tool",
                "tool_call_id": "c2",
                "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}],
            },
            {"role": "developer", "content": "Now in French."},  # turn 3: in place
            {"role": "user", "content": [{"type": "text", "text": "q"}], "name": "ann"},  # turn 4
        ],
    }
)


@pytest.mark.parametrize(
    "refused, path",
    [
        (Unsupported("{where}", 0, 0), "messages[1].content"),
        (Unsupported("{where}", 1, 0), "messages[2].reasoning_content"),
        (Unsupported("{where}", 1, 1), "messages[2].content[0]"),
        (Unsupported("{where}", 1, 2), "messages[2].refusal"),
        (Unsupported("{where}", 1, 4), "messages[2].tool_calls[1]"),
        (Unsupported("{where}", 2, 0), "messages[3]"),
        (Unsupported("{where}", 2, 0, 0), "messages[3].content"),
        (Unsupported("{where}", 2, 1), "messages[4]"),
        (Unsupported("{where}", 2, 1, 1), "messages[4].content[1]"),
        (Unsupported("{where}", 3, 0), "messages[5].content"),
        (Unsupported("{where}", 4, 0), "messages[6].content[0]"),
        (Unsupported("{where}", 4, field="name"), "messages[6].name"),
        (Unsupported("{where}", field="logit_bias"), "logit_bias"),
    ],
)
def test_a_refused_place_is_translated_to_the_callers_path(refused, path):
    turns = to_messages(SENT)[1]
    assert len(turns) == 5 and len(turns[1].content) == 5 and len(turns[2].content) == 2  # the shape cases assume
    assert caller_path(SENT, refused) == path
    assert refused.describe(caller_path(SENT, refused)) == path


def test_a_refusal_reads_as_before_in_the_content_models_terms():
    assert str(Unsupported("an image block ({where})", 2, 1, 1)) == "an image block (messages[2].content[1].content[1])"
    assert str(Unsupported("field `{where}`", 0, field="name")) == "field `messages[0].name`"
    assert str(Unsupported("field `{where}`", field="logit_bias")) == "field `logit_bias`"
