"""The gateway's Gemini ingress: an answer's parts read back as the same blocks (what a caller does when it appends
the answer to its next request), and a refused block named at the part the caller sent."""

from __future__ import annotations

import base64

from google.genai import types

from tokenomy.messages import ImageBlock, ReasoningBlock, TextBlock, ToolResultBlock, ToolUseBlock
from tokenomy.providers.gemini_answers import parts_body, signature_out
from tokenomy.providers.gemini_caller_places import caller_param
from tokenomy.providers.gemini_inbound import request_from_gemini

SIGNATURE = base64.b64encode(b"gemini-signature").decode()
REDACTED = base64.b64encode(bytes(range(64))).decode()


def test_an_answers_parts_come_back_as_the_blocks_they_were() -> None:
    """Claude's signed and redacted thinking, a signature riding on a call (Gemini's), a URL image: a Gemini-API
    caller that sends the answer back returns each to the model that made it, signed."""
    blocks = [
        ReasoningBlock("thinking it over", SIGNATURE, signer="claude"),
        ReasoningBlock(redacted=REDACTED, signer="claude"),
        TextBlock("Calling."),
        ReasoningBlock("", SIGNATURE, signer="gemini"),
        ToolUseBlock("toolu_1", "get_weather", {"city": "Oslo"}, '{"city": "Oslo"}'),
        ImageBlock(media_type="image/png", url="https://example.com/a.png"),
    ]
    parts = parts_body(blocks)
    assert parts[0] == {"text": "thinking it over", "thought": True}  # shown; the part after it carries it
    assert parts[2]["functionCall"] == {"id": "toolu_1", "name": "get_weather", "args": {"city": "Oslo"}}
    # Through the SDK: it holds each signature as bytes, and sends them back URL-safe.
    answer = types.Content.model_validate({"role": "model", "parts": parts})
    sent_back = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, sent_back]}
    assert request_from_gemini("m", body).messages[1].content == blocks
    # Gemini CLI keeps no thought parts in its history (ADK joins them without signatures): the same blocks.
    dropped = {**sent_back, "parts": [p for p in sent_back["parts"] if not p.get("thought")]}
    assert request_from_gemini("m", {"contents": [body["contents"][0], dropped]}).messages[1].content == blocks
    joined = {**sent_back, "parts": [{"text": "thinking it over", "thought": True}, *dropped["parts"]]}
    assert request_from_gemini("m", {"contents": [body["contents"][0], joined]}).messages[1].content == blocks
    # A signature from Gemini itself, not through the gateway, is its bytes in standard base64.
    native = {"contents": [{"parts": [{"text": "x", "thought": True, "thoughtSignature": "-vv8_f7_"}]}]}
    assert request_from_gemini("m", native).messages[0].content == [ReasoningBlock("x", "+vv8/f7/", signer="gemini")]


def test_streamed_thought_pieces_are_one_signed_thought() -> None:
    parts = [
        {"text": "a", "thought": True},
        {"text": "b", "thought": True},
        {"text": "", "thought": True, "thoughtSignature": signature_out(SIGNATURE)},
        {"text": "Hi."},
    ]
    body = {"contents": [{"parts": [{"text": "hi"}]}, {"role": "model", "parts": parts}]}
    thought = ReasoningBlock("ab", SIGNATURE, signer="gemini")
    assert request_from_gemini("m", body).messages[1].content == [thought, TextBlock("Hi.")]
    assert caller_param(body, "messages[1].content[1]") == "contents[1].parts[3]"


def test_a_refused_block_is_named_at_the_part_the_caller_sent() -> None:
    parts = [
        {"text": "Look:", "thoughtSignature": SIGNATURE},
        {"inlineData": {"mimeType": "image/png", "data": "AA=="}},
    ]
    body = {"contents": [{"parts": parts}]}
    blocks = request_from_gemini("m", body).messages[0].content
    assert [type(b) for b in blocks] == [ReasoningBlock, TextBlock, ImageBlock]
    assert caller_param(body, "messages[0].content[2]") == "contents[0].parts[1]"
    assert caller_param(body, "messages[0].content[2].detail") == "contents[0].parts[1].detail"
    assert caller_param(body, "top_k") == "generationConfig.topK"


def test_an_answer_sent_back_a_content_per_chunk_is_one_turn_of_the_blocks_it_was() -> None:
    """google-genai's chats keep a streamed answer as a model content per chunk: each was a turn of its own (Claude's
    thinking read twice: shown in one content, carried in another). They are one turn, read as the whole answer."""
    blocks = [
        ReasoningBlock("thinking it over", SIGNATURE, signer="claude"),
        TextBlock("Calling."),
        ReasoningBlock("", SIGNATURE, signer="gemini"),
        ToolUseBlock("toolu_1", "get_weather", {"city": "Oslo"}, '{"city": "Oslo"}'),
    ]
    chunks = [{"role": "model", "parts": [part]} for part in parts_body(blocks)]
    assert len(chunks) == 3  # the thought shown, the text carrying it, the signed call
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, *chunks]}
    messages = request_from_gemini("m", body).messages
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].content == blocks
    assert caller_param(body, "messages[1]") == "contents[1]"
    assert caller_param(body, "messages[1].content[1]") == "contents[2].parts[0]"
    assert caller_param(body, "messages[1].content[3].input") == "contents[3].parts[0].input"


def test_a_streamed_answers_text_is_one_text_up_to_a_call_or_a_signed_part() -> None:
    """ "Hel" and "lo" in contents of their own are "Hello"; text after a function call, or on a part with a signature
    (Gemini checks it on that part), stays a block of its own. A user's contents in a row stay turns of their own."""
    model = [["Hel"], ["lo", {"functionCall": {"name": "f", "args": {}}}], ["Done", {"text": "!"}]]
    signed = [{"text": "Sure", "thoughtSignature": SIGNATURE}]
    contents = [
        {"role": "user", "parts": [{"text": "hi"}]},
        *({"role": "model", "parts": [{"text": p} if isinstance(p, str) else p for p in parts]} for parts in model),
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "ok"}}}]},
        {"role": "user", "parts": [{"text": "and?"}]},
        {"role": "model", "parts": signed},
        {"role": "model", "parts": [{"text": " thing"}]},
    ]
    body = {"contents": contents}
    messages = request_from_gemini("m", body).messages
    assert [m.role for m in messages] == ["user", "assistant", "user", "user", "assistant"]
    assert messages[1].content[0] == TextBlock("Hello") and messages[1].content[2:] == [TextBlock("Done!")]
    assert isinstance(messages[1].content[1], ToolUseBlock)
    gemini = ReasoningBlock("", SIGNATURE, signer="gemini")
    assert messages[4].content == [gemini, TextBlock("Sure"), TextBlock(" thing")]
    assert caller_param(body, "messages[1].content[1].input") == "contents[2].parts[1].input"
    assert caller_param(body, "messages[1].content[2]") == "contents[3].parts[1]"  # a joined text: its last part
    assert caller_param(body, "messages[3].content[0]") == "contents[5].parts[0]"
    assert caller_param(body, "messages[4].content[2]") == "contents[7].parts[0]"


def test_parallel_calls_streamed_a_content_each_are_answered_in_their_order() -> None:
    """Calls of one function without ids are answered by name, in the order the turn made them: two streamed in
    contents of their own were two turns, and the first response was matched to the later call."""
    call = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
    answers = [{"functionResponse": {"name": "f", "response": {"output": n}}} for n in ("one", "two")]
    body = {"contents": [{"parts": [{"text": "hi"}]}, call, call, {"role": "user", "parts": answers}]}
    messages = request_from_gemini("m", body).messages
    made = [b.id for b in messages[1].content if isinstance(b, ToolUseBlock)]
    answered = [(b.tool_use_id, b.content[0].text) for b in messages[2].content if isinstance(b, ToolResultBlock)]
    assert answered == [(made[0], "one"), (made[1], "two")]


def test_a_signature_riding_on_a_streamed_function_call_goes_out_on_that_call() -> None:
    """Gemini 3 wants each function call's signature back on that call: a stream sends the call whole, at the end,
    with the signature that rode on its first piece."""
    import json

    from tokenomy.chat_response import ChatResponse, Usage
    from tokenomy.gateway.gemini_stream import ChunkWriter
    from tokenomy.providers.gemini_provider import GeminiProvider

    writer = ChunkWriter("g", "resp-1", {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}})
    pieces = [
        GeminiProvider._chunk(part, 0)
        for part in (
            {"thought": True, "text": "Look it up."},
            {
                "function_call": {"id": "fc_1", "name": "get_weather", "args": {"city": "Oslo"}},
                "thought_signature": b"sig",
            },
        )
    ]
    streamed = [chunk for piece in pieces for chunk in writer.chunk(piece)]
    # The thought streams as it comes (its last character once the call came), and the call is held for the last chunk
    sent = [json.loads(c.decode().removeprefix("data: "))["candidates"][0]["content"]["parts"] for c in streamed]
    assert all(part.get("thought") for parts in sent for part in parts), sent
    assert "".join(part["text"] for parts in sent for part in parts) == "Look it up."
    signed = base64.b64encode(b"sig").decode()  # the provider's text for Gemini's signature bytes
    answer = ChatResponse(
        content=[
            ReasoningBlock("Look it up."),
            ReasoningBlock("", signed),
            ToolUseBlock("fc_1", "get_weather", {"city": "Oslo"}),
        ],
        model="g",
        provider="gcp.gemini",
        usage=Usage(5, 3),
        finish_reason="tool_calls",
    )
    [last] = writer.finish(answer)
    parts = json.loads(last.decode().removeprefix("data: "))["candidates"][0]["content"]["parts"]
    assert parts == [
        {
            "functionCall": {"id": "fc_1", "name": "get_weather", "args": {"city": "Oslo"}},
            "thoughtSignature": signature_out(signed),
        }
    ]


def test_every_claude_converse_and_openai_stop_reason_is_a_finish_reason_gemini_has() -> None:
    """Each stop reason the official SDKs of Claude, Converse and OpenAI know, as the providers record it, comes back
    on the Gemini routes as a FinishReason google-genai has (Claude's pause_turn came back as PAUSE_TURN, OpenAI's
    function_call as FUNCTION_CALL: names the SDK warns about and an agent does not act on)."""
    import gzip
    import json
    import typing
    from pathlib import Path

    import anthropic.types
    import botocore
    from openai.types.chat.chat_completion import Choice

    from tokenomy.chat_response import ChatResponse, Usage
    from tokenomy.providers.anthropic_mapping import FINISH_REASONS as CLAUDE
    from tokenomy.providers.bedrock_answer_read import FINISH_REASONS as CONVERSE
    from tokenomy.providers.gemini_answers import finish_reason

    service = next((Path(botocore.__file__).parent / "data" / "bedrock-runtime").glob("*/service-2.json.gz"))
    converse = json.loads(gzip.decompress(service.read_bytes()))["shapes"]["StopReason"]["enum"]
    recorded = {CLAUDE[r] for r in typing.get_args(anthropic.types.StopReason)}
    recorded |= {CONVERSE.get(r, r) for r in converse}  # as providers/bedrock.py records them
    recorded |= set(typing.get_args(Choice.model_fields["finish_reason"].annotation))
    gemini = {reason.value for reason in types.FinishReason}
    said = {r: finish_reason(ChatResponse(content=[], usage=Usage(), model="m", provider="p", finish_reason=r))
            for r in recorded}  # fmt: skip
    assert {r: g for r, g in said.items() if g not in gemini} == {}
    assert said["pause_turn"] == "TOO_MANY_TOOL_CALLS" and said["stop"] == said["function_call"] == "STOP"
