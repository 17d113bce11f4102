"""The ledger's prompt and prefix hashes (ledger/fingerprints.py): what `plan savings` and the caching analysis
group repeated prefixes by, so two prompts a provider sees differently must never hash alike."""

from __future__ import annotations

import hashlib

from tokenomy.ledger.fingerprints import fingerprints
from tokenomy.messages import (
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)

PNG_A, PNG_B = b"\x89PNG\r\n\x1a\n" + b"a" * 4000, b"\x89PNG\r\n\x1a\n" + b"b" * 4000


def _request(first: list, answer: list | None = None) -> ChatRequest:
    """A conversation whose first turn is `first` (its blocks), then the model's answer, then a question: the prefix
    is the first two turns."""
    return ChatRequest(
        messages=[
            Message("user", first),
            Message("assistant", answer or [TextBlock("It shows a cat.")]),
            Message("user", "And its colour?"),
        ],
        system="Describe images.",
    )


def _prefix(request: ChatRequest) -> str | None:
    return fingerprints(request)[1]


def test_prompts_differing_only_in_an_earlier_image_or_document_have_different_prefix_hashes() -> None:
    # Both prefixes hashed their text only ("What is this?"), so a call after another's image read as a cache hit.
    text = TextBlock("What is this?")
    images = [
        ImageBlock("image/png", data=PNG_A),
        ImageBlock("image/png", data=PNG_B),
        ImageBlock("image/png", base64="iVBORw0KGgoAAAA="),
        ImageBlock("image/png", base64="iVBORw0KGgoBBBB="),
        ImageBlock(url="https://example.com/a.png"),
        ImageBlock(url="https://example.com/b.png"),
        ImageBlock(url="https://example.com/a.png", detail="low"),
    ]
    documents = [
        DocumentBlock("pdf", data=b"%PDF-1.4 one"),
        DocumentBlock("pdf", data=b"%PDF-1.4 two"),
        DocumentBlock("pdf", file_id="file-1"),
        DocumentBlock("pdf", url="https://example.com/a.pdf"),
        DocumentBlock("txt", content=[TextBlock("chunk one")]),
        DocumentBlock("txt", content=[TextBlock("chunk two")]),
    ]
    hashes = [_prefix(_request([text, block])) for block in [*images, *documents]]
    assert len(set(hashes)) == len(hashes)
    # The same image (as the same bytes) again is the same prefix: a repeat is still found.
    assert _prefix(_request([text, ImageBlock("image/png", data=PNG_A)])) == hashes[0]
    assert (
        fingerprints(_request([text, ImageBlock("image/png", data=PNG_A)]))[0]
        != fingerprints(_request([text, ImageBlock("image/png", data=PNG_B)]))[0]
    )  # the prompt hash too


def test_prompts_differing_only_in_a_tool_call_or_its_result_have_different_prefix_hashes() -> None:
    # An assistant turn of tool calls only had no text: every such turn hashed alike, whatever it called.
    ask = [TextBlock("Weather?")]
    calls = [
        [ToolUseBlock("call_1", "weather", {"city": "Paris"})],
        [ToolUseBlock("call_1", "weather", {"city": "Rome"})],
        [ToolUseBlock("call_1", "time", {"city": "Paris"})],
        [ToolUseBlock("call_2", "weather", {"city": "Paris"})],
    ]
    hashes = [_prefix(_request(ask, answer)) for answer in calls]
    assert len(set(hashes)) == len(hashes)
    results = [
        ToolResultBlock("call_1", [TextBlock("sunny")]),
        ToolResultBlock("call_2", [TextBlock("sunny")]),
        ToolResultBlock("call_1", [ImageBlock("image/png", data=PNG_A)]),
        ToolResultBlock("call_1", [ImageBlock("image/png", data=PNG_B)]),
    ]
    hashes = [_prefix(_request([result])) for result in results]
    assert len(set(hashes)) == len(hashes)


def test_a_text_only_prompt_hashes_as_before() -> None:
    """Text turns are hashed as they always were, so the ledger's earlier rows still match new ones."""
    request = _request([TextBlock("What is "), TextBlock("this?")])
    prompt = "Describe images.\x00user\x01What is this?\x00assistant\x01It shows a cat.\x00user\x01And its colour?"
    prefix = prompt[: prompt.index("\x00user\x01And")]
    assert fingerprints(request) == (
        hashlib.sha256(prompt.encode()).hexdigest()[:32],
        hashlib.sha256(prefix.encode()).hexdigest()[:32],
        (len(prefix) + 3) // 4,
    )


def test_payloads_kept_for_their_digests_are_bounded_by_their_bytes() -> None:
    # The digest memo keeps each payload it hashed for an equality check; by count alone (64) it held up to 64
    # images of 8 MB, half a gigabyte alive in the gateway. The bytes it holds together stay under its bound.
    from tokenomy.ledger import fingerprints as hashes

    hashes._DIGESTS.clear()
    hashes._digest_bytes = 0
    digests = [hashes.payload_digest(bytes([n]) * (3 << 20)) for n in range(20)]
    held = sum(len(payload) for payload, _ in hashes._DIGESTS.values())
    assert held == hashes._digest_bytes <= hashes._DIGEST_BYTES_MAX
    assert len(set(digests)) == 20
    assert hashes.payload_digest(bytes([19]) * (3 << 20)) == digests[-1]  # the newest is still found
