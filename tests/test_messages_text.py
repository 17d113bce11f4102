"""The plain text of a turn or a tool result (for estimates, routing rules and prompt hashes): its text blocks and
tool results' text, in order; nothing for images, calls or reasoning."""

from __future__ import annotations

from tokenomy.messages import (
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    blocks_text,
)

IMAGE = ImageBlock(media_type="image/png", base64="iVBORw0KGgo=")


def test_a_turn_of_one_block_reads_as_its_text_or_nothing():
    assert Message("user", "hi").text == "hi"
    assert Message("user", [IMAGE]).text == ""
    assert Message("assistant", [ToolUseBlock("c1", "f")]).text == ""
    assert Message("assistant", [ReasoningBlock("thinking")]).text == ""
    assert Message("user", [ToolResultBlock("c1", [TextBlock("18C")])]).text == "18C"
    assert Message("user", []).text == "" and blocks_text([]) == ""


def test_a_turn_of_several_blocks_reads_as_their_texts_joined():
    results = [
        ToolResultBlock("c1", [TextBlock("a"), IMAGE, TextBlock("b")]),
        ToolResultBlock("c2", [IMAGE]),
        ToolResultBlock("c3", []),
    ]
    assert [r.text for r in results] == ["ab", "", ""]
    assert Message("user", [TextBlock("see "), IMAGE, *results, TextBlock("?")]).text == "see ab?"
