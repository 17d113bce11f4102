"""The one characters-to-tokens rule every token estimate uses (prompt estimates for answers without usage, rate
limits, cache placement, embeddings, batch validation, the ledger's prefix size): ~4 ASCII characters a token, but a
Chinese, Japanese or Korean character is about one token, not a quarter of one. And the upper bound of a prompt's
tokens that a budget reserves, which dense text (digits, hex, JSON, emoji) does not beat as it beats the estimate."""

from __future__ import annotations

import json

from tokenomy.caching.placement import estimate_input_tokens, estimate_tokens, input_bound
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
        assert _within(estimate_input_tokens(request), len(text))  # rate limits, routing
        assert _within(estimate_tokens(text), len(text))  # cache placement, batch backends, routing datasets
        from tokenomy.batch.record_tokens import estimate_tokens as batch_estimate
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


# Text that tokenizes denser than ~4 characters a token, as a prompt may carry it.
DIGITS = "".join(str(i * 7919 % 10) for i in range(3000))
CSV = "\n".join(",".join(f"{(i * 37 + j * 101) % 2000 - 1000}.{i * j % 9999:04d}" for j in range(8)) for i in range(60))
HEX = " ".join(f"{i * 2654435761 % 2**64:016x}{i * 40503 % 2**64:016x}" for i in range(80))
UUIDS = "\n".join(f"{i * 7919:08x}-{i:04x}-4{i * 7 % 4096:03x}-a{i % 4096:03x}-{i * 104729:012x}" for i in range(80))
LOGS = "\n".join(
    f"2026-12-05T22:{i % 60:02d}:{i * 7 % 60:02d}Z INFO 10.0.{i % 255}.{i * 3 % 255} GET /v1/items/{i * 7919} 200"
    for i in range(60)
)
JSON = json.dumps([{"id": i, "name": f"item {i}", "price": i * 1.37, "tags": ["a", "b"]} for i in range(80)])
DENSE = {
    "digits": DIGITS,
    "csv": CSV,
    "hex": HEX,
    "uuids": UUIDS,
    "logs": LOGS,
    "json": JSON,
    "emoji": "😀🚀🎉👍🔥💡✅🙏🌍" * 60,
    "chinese": CHINESE,
}


def test_a_prompt_is_reserved_at_no_less_than_a_real_tokenizer_counts_it():
    # The local model's tokenizer (SmolLM2's) splits digits, as Gemini's does: 3,000 digits are 3,000 tokens, which the
    # estimate put at 750, so concurrent calls each admitted on it overspent a budget fourfold. The bound a budget
    # reserves counts the prompt as the model reads it, its chat framing (ChatML's <|im_start|>user ...) too.
    from tokenomy.providers.local import LocalProvider

    local = LocalProvider()
    for name, text in DENSE.items():
        request = ChatRequest([Message("user", text)], model="local")
        counted = local.count_tokens(request)
        assert counted <= input_bound(request)[0], name
        assert estimate_input_tokens(request) < counted, name  # the estimate alone would reserve less
    digits = ChatRequest([Message("user", DIGITS)], model="local")
    assert local.count_tokens(digits) > 3.9 * estimate_input_tokens(digits)


def test_english_prose_is_reserved_close_to_its_estimate():
    # Prose tokenizes at or under ~4 characters a token: its bound stays near the estimate, so a budget near its end
    # does not refuse a plain call for nothing.
    for text in (ENGLISH, "Hi! Could you tell me what the weather is usually like in Lisbon in April? Thanks. " * 30):
        request = ChatRequest([Message("user", text)], model="m")
        assert estimate_input_tokens(request) < input_bound(request)[0] <= 1.35 * estimate_input_tokens(request)


def test_the_bound_counts_each_class_and_each_token_start():
    # Pinned values, the same as bound_length's first (slower, pass-per-count) version gave: "aB1c" is 3 letters (1
    # capital, counted twice), a digit at 4, and 3 token starts at 4 (opening letter, a-to-B case change, c after 1).
    from tokenomy.token_estimate import bound_length

    cases = {
        "": 0,
        "a": 5,
        "Q": 6,
        "7": 4,
        " ": 1,
        "\ud800": 8,
        "aB1c": 20,
        "getHTTPResponse2xx v2 id 550e8400-e29b-41d4": 124,
        "Résumé: naïve café, 42 EUR": 62,  # mostly ASCII, with some accented letters
        "合同第3条：USD 12,500 😀": 92,
        "合同第3条付款期限为2026年Q4交付": 122,  # mostly CJK, with digits and a capital between its characters
        "😀😀9x": 33,
    }
    assert {text: bound_length(text) for text in cases} == cases
