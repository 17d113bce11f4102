"""Cache points on a system message in mid-conversation, which Claude's Messages API, Converse and Gemini take in
their one system prompt (`request_views.system_hoisted`): the joining dropped them, so the caller's point never
reached Claude or Bedrock. Each now stays after its own text in the joined prompt, a system block ending with it."""

from __future__ import annotations

from tokenomy.messages import ONE_HOUR, ChatRequest, Message, TextBlock
from tokenomy.providers.anthropic_mapping import to_anthropic_params
from tokenomy.providers.anthropic_provider import AnthropicProvider
from tokenomy.providers.converse_mapping import to_converse_params
from tokenomy.providers.gemini_mapping import config_from_request, contents_from_request
from tokenomy.request_views import system_hoisted, system_parts

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
CACHED = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}


def conversation(system: str | None = "Rules.", system_cache_point: bool = False) -> ChatRequest:
    """An opening system prompt, then a system message in mid-conversation with a point inside it (after its first
    block) and one at its end, then another system message without one."""
    turns = [
        Message("user", "Read the handbook."),
        Message("assistant", "Read."),
        Message("system", [TextBlock("Handbook: "), TextBlock("clauses.")], True, block_points=((0, ONE_HOUR),)),
        Message("user", "Who is bound?"),
        Message("system", "Be brief."),
    ]
    return ChatRequest(messages=turns, model=SONNET, system=system, system_cache_point=system_cache_point)


def test_a_system_messages_points_reach_claude_on_its_own_system_blocks() -> None:
    params = to_anthropic_params(conversation())
    assert params["system"] == [
        {"type": "text", "text": "Rules.\n\nHandbook: ", "cache_control": {**CACHED, "ttl": "1h"}},
        {"type": "text", "text": "clauses.", "cache_control": CACHED},
        {"type": "text", "text": "Be brief."},
    ]
    assert [m["role"] for m in params["messages"]] == ["user", "assistant", "user"]
    # The opening prompt's own point stays at its end, before the messages joined after it.
    params = to_anthropic_params(conversation(system_cache_point=True))
    assert [(b["text"], b.get("cache_control")) for b in params["system"]] == [
        ("Rules.", CACHED),
        ("Handbook: ", {**CACHED, "ttl": "1h"}),
        ("clauses.", CACHED),
        ("Be brief.", None),
    ]


def test_a_system_messages_points_reach_converse_after_their_system_parts() -> None:
    params = to_converse_params(conversation(system_cache_point=True).replaced(model=BEDROCK_SONNET))
    assert params["system"] == [
        {"text": "Rules."},
        POINT,
        {"text": "Handbook: "},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
        {"text": "clauses."},
        POINT,
        {"text": "Be brief."},
    ]


def test_the_joined_text_is_the_callers_text_as_before_and_gemini_caches_without_points() -> None:
    request = conversation(system_cache_point=True)
    joined = "Rules.\n\nHandbook: clauses.\n\nBe brief."
    hoisted = system_hoisted(request)
    assert (
        hoisted.system == joined
        and "".join(text for text, _ in system_parts(hoisted)) == "Rules.Handbook: clauses.Be brief."
    )
    # Gemini has no cache points (it caches implicitly): its system instruction is the joined text, as before.
    gemini = request.replaced(model="gemini-2.5-flash")
    assert config_from_request(gemini)["system_instruction"] == joined
    assert len(contents_from_request(gemini)) == 3


def test_a_last_system_messages_point_ends_the_prompt_and_an_empty_opening_one_joins_it() -> None:
    request = conversation(system=None)
    request.messages[-1].cache_point = True
    hoisted = system_hoisted(request)
    assert hoisted.system_cache_point is True and [p for *_, p in hoisted.system_breaks] == [ONE_HOUR, True]
    # No opening text: the system prompt's point is the joined prompt's end, one point with the message's there.
    request.system_cache_point = ONE_HOUR
    assert system_hoisted(request).system_cache_point == ONE_HOUR


def test_a_system_messages_points_count_toward_the_four_a_request_takes() -> None:
    request = conversation(system_cache_point=True)  # 3 points: the opening prompt's and the message's two
    request.messages[0].cache_point = True
    provider = AnthropicProvider(base_url="http://127.0.0.1:9", api_key="x")  # (never called)
    assert provider.refusal(request) is None
    request.messages[-1].cache_point = True  # the fifth
    refused = provider.refusal(request)
    assert refused is not None and str(refused).startswith("cache point 5 (`messages[4].content[0].cache_control`"), (
        refused
    )
