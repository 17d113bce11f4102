"""The one characters-to-tokens rule every token estimate uses (prompt estimates for answers without usage, the
gateway's budget reservation, rate limits, cache placement, embeddings, batch validation, the ledger's prefix size):
~4 ASCII characters a token, but a Chinese, Japanese or Korean character is about one token, not a quarter of one."""

from __future__ import annotations

from tokenomy.caching.placement import estimate_input_tokens, estimate_tokens
from tokenomy.ledger.fingerprints import fingerprints
from tokenomy.messages import ChatRequest, Message, ToolResultBlock, ToolUseBlock
from tokenomy.providers.usage_counts import estimated_prompt_tokens, estimated_usage

CHINESE = "请把这份合同的付款条款总结成三条要点，并指出风险。" * 40  # 1,000 characters: ~1,000 tokens
JAPANESE = "この契約書の支払い条件を三つの要点にまとめてください。" * 40
ENGLISH = "Summarise the payment terms of this contract in three points. " * 16  # 992 characters: ~250 tokens


def _within(estimate: int, tokens: int) -> bool:
    return 0.8 * tokens <= estimate <= 1.5 * tokens


def test_a_cjk_prompt_is_estimated_at_about_a_token_a_character_everywhere() -> None:
    # Each estimate said ~250 tokens for 1,000 CJK characters: a reservation a quarter of what the call costs.
    for text in (CHINESE, JAPANESE):
        request = ChatRequest.simple(text, model="m")
        assert _within(estimated_prompt_tokens(request), len(text)), text[:10]
        assert _within(estimate_input_tokens(request), len(text))  # the gateway's reservation, rate limits, routing
        assert _within(estimate_tokens(text), len(text))  # cache placement, batch backends, routing datasets
        from tokenomy.batch.validate import estimate_tokens as batch_estimate
        from tokenomy.gateway.embeddings_request import estimated_tokens

        assert _within(batch_estimate(text), len(text))
        assert _within(estimated_tokens([text]), len(text))
        two_turns = ChatRequest(messages=[Message("user", text), Message("assistant", "ok"), Message("user", "?")])
        assert _within(fingerprints(two_turns)[2], len(text))  # the ledger's prefix size (plan savings)
        usage = estimated_usage(request, Message("assistant", text).content, {})  # an answer sent without usage
        assert _within(usage.output_tokens, len(text))
        call = ToolUseBlock("c1", "lookup", arguments=f'{{"q": "{text}"}}')
        agent = ChatRequest(
            messages=[
                Message("user", "go"),
                Message("assistant", [call]),
                Message("user", [ToolResultBlock("c1", Message("user", text).content)]),
            ]
        )
        assert _within(estimate_input_tokens(agent), 2 * len(text))


def test_ascii_text_is_estimated_as_before() -> None:
    request = ChatRequest.simple(ENGLISH, model="m")
    assert estimated_prompt_tokens(request) == len(ENGLISH) // 4
    assert estimate_tokens(ENGLISH) == estimate_input_tokens(request) == (len(ENGLISH) + 3) // 4
    mixed = "Résumé: naïve café " * 10  # Latin text with a few accented letters: a little more, never 4x
    assert (len(mixed) + 3) // 4 <= estimate_tokens(mixed) <= (len(mixed) + 3) // 2


def test_a_cjk_stream_left_midway_is_recorded_at_a_token_a_character(ledger_path) -> None:
    # The output of a stream the caller left was the characters received over four: 40 CJK characters read as 10.
    from helpers.scripted_openai import ScriptedOpenAI, models
    from tokenomy.client import Tokenomy
    from tokenomy.ledger.store import open_store

    upstream = ScriptedOpenAI([(200, {}, "slow")], reply=("合同" * 20, "。" * 40))
    try:
        with Tokenomy(ledger_path, models=models(a=upstream.url)) as client:
            chunks = client.stream(ChatRequest.simple("总结" * 50, model="a", max_tokens=500))
            first = next(chunks)
            assert first.delta == "合同" * 20
            chunks.close()
    finally:
        upstream.release()
        upstream.close()
    [row] = open_store(ledger_path).events()
    assert row.outcome == "cancelled" and _within(row.output_tokens, 40) and _within(row.input_tokens, 100)
