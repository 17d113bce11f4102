"""Automatic cache points, token-efficiency policies, and issue 3's checks through the Bedrock emulator."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

import pytest
from opentelemetry import trace

from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS, auto_cache, place_cache_points
from tokenomy.caching.tokens import TokenPolicy, apply_token_policy
from tokenomy.client import Tokenomy
from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, DocumentBlock, ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.providers.anthropic_inbound import request_from_anthropic
from tokenomy.providers.registry import ModelSpec
from tokenomy.request_options import ToolSpec
from tokenomy.request_views import system_hoisted
from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
HAIKU35 = "anthropic.claude-3-5-haiku-20241022-v1:0"
POLICY_TEXT = "\n".join(f"Clause {i}: orders of class {i} ship within {i % 5 + 1} days of payment." for i in range(75))


def conversation(system: str, turns: int = 3) -> ChatRequest:
    messages = []
    for i in range(turns):
        messages.append(Message("user", f"Question {i}: " + "details " * 200))
        messages.append(Message("assistant", f"Answer {i}."))
    messages.append(Message("user", "And now?"))
    return ChatRequest(messages=messages, model=SONNET, system=system, max_tokens=8)


def test_cache_point_goes_after_the_long_system_prompt():
    entry = default_catalog().lookup(SONNET)
    placed, placements = place_cache_points(ChatRequest.simple("Hi", model=SONNET, system=POLICY_TEXT), entry)
    assert placed.system_cache_point and [p.after for p in placements] == ["system"]
    assert placements[0].prefix_tokens >= entry.cache_min_tokens


def test_no_cache_point_below_the_model_minimum():
    short = ChatRequest.simple("Hi", model=SONNET, system="You are terse.")
    placed, placements = auto_cache(short, SONNET)
    assert placements == [] and not placed.system_cache_point
    # Claude 3.5 Haiku needs 2,048 tokens: a prompt that is enough for Sonnet (1,024) is not enough for it.
    mid = ChatRequest.simple("Hi", model=HAIKU35, system=POLICY_TEXT[: 1500 * 4])
    assert auto_cache(mid, SONNET)[1] and not auto_cache(mid, HAIKU35)[1]


def test_at_most_the_models_checkpoints_and_longest_prefixes_first():
    request = conversation(POLICY_TEXT, turns=4)
    entry = default_catalog().lookup("claude-3-7-sonnet-20250219")  # Anthropic's API: the minimum per prefix
    _, placements = place_cache_points(request, entry)
    assert len(placements) == entry.cache_max_checkpoints == 4
    sizes = [p.prefix_tokens for p in placements]
    assert sizes == sorted(sizes) and placements[-1].after == "message:7"  # the last assistant turn


def test_bedrock_points_are_the_minimum_apart_so_none_is_ignored():
    """Bedrock takes a checkpoint only the model's minimum past the one before it ("the first after 1,024 tokens, the
    second after 2,048"): a point after 1,128 tokens of tools made it ignore the one after the system prompt at
    2,028, and the 900 tokens of system prompt were never cached. The longest prefix is always kept."""
    tools = [ToolSpec(name="lookup", description="d " * 2200, input_schema={"type": "object", "properties": {}})]
    request = ChatRequest(model=SONNET, messages=[Message("user", "hi")], system="s" * 3600, tools=tools)
    entry = default_catalog().lookup(SONNET, "us-east-1")
    placed, placements = place_cache_points(request, entry)
    assert [p.after for p in placements] == ["system"] and placed.system_cache_point
    assert not placed.tools_cache_point
    # Far enough apart, each prefix gets its point; on the longest-first walk each is the minimum below the last.
    _, placements = place_cache_points(conversation(POLICY_TEXT, turns=6), entry)
    sizes = [p.prefix_tokens for p in placements]
    assert len(sizes) >= 2 and sizes[0] >= entry.cache_min_tokens
    assert all(b - a >= entry.cache_min_tokens for a, b in itertools.pairwise(sizes))
    assert placements[-1].after == "message:11"
    # Anthropic's API needs the minimum for the prefix as a whole: both points stay.
    direct = default_catalog().lookup("claude-3-7-sonnet-20250219")
    assert [p.after for p in place_cache_points(request, direct)[1]] == ["tools", "system"]


def test_no_automatic_point_in_novas_tools():
    """Amazon Nova takes no cache point in its tools: automatic caching put its only point there (a request with
    long tools and no long system prompt), which Nova cannot take. The tools still count in the prefix of a later
    point, which caches them."""
    nova = "amazon.nova-lite-v1:0"
    tools = [ToolSpec(name="lookup", description="d " * 4400, input_schema={"type": "object", "properties": {}})]
    request = ChatRequest(model=nova, messages=[Message("user", "hi")], tools=tools)
    placed, placements = auto_cache(request, nova, region="us-east-1")
    assert placements == [] and not placed.tools_cache_point
    with_turns = replace(
        request, system="Be brief.", messages=[Message("user", "q"), Message("assistant", "a"), Message("user", "hi")]
    )
    placed, placements = auto_cache(with_turns, nova, region="us-east-1")
    assert [p.after for p in placements] == ["message:1"] and placements[0].prefix_tokens > 2200
    assert not placed.tools_cache_point and not placed.system_cache_point


def test_a_turn_of_images_documents_or_tool_calls_counts_in_the_prefix():
    """Placement counted a turn by its words only: three images (about 4,800 tokens to Claude) with a one-line
    question got no cache point, and every later turn was billed the images in full. Images and documents count at
    the figures the input estimate gives them, tool calls by their arguments."""
    image = ImageBlock("image/png", b"\x89PNG" + b"0" * 100)
    turns = [
        Message("user", [image, image, image, TextBlock("Describe these")]),
        Message("assistant", "Red."),
        Message("user", "And the colours?"),
    ]
    request = ChatRequest(model="claude-sonnet-4-5-20250929", messages=turns)
    placed, placements = auto_cache(request, "claude-sonnet-4-5-20250929")
    assert [p.after for p in placements] == ["message:0", "message:1"] and placed.messages[1].cache_point
    assert placements[0].prefix_tokens >= 3 * IMAGE_TOKENS
    pdf = DocumentBlock(format="pdf", name="report", data=b"%PDF-1.4 " + b"/Type /Page " * 3)
    call = ToolUseBlock(id="t1", name="search", input={"query": "q " * 3000})
    turns = [
        Message("user", [pdf, TextBlock("Summarise")]),
        Message("assistant", [call]),
        Message("user", [ToolResultBlock("t1", [TextBlock("found")])]),
    ]
    _, placements = auto_cache(replace(request, messages=turns), "claude-sonnet-4-5-20250929")
    assert placements[0].after == "message:0" and placements[0].prefix_tokens >= 3 * DOCUMENT_TOKENS
    assert placements[1].after == "message:1" and placements[1].prefix_tokens - placements[0].prefix_tokens > 1500


def test_a_system_message_in_mid_conversation_is_part_of_the_system_prompt():
    """Claude and Bedrock take one system prompt, and a system message in mid-conversation joins it: a point placed
    on that message as on a turn was lost in the joining. On Bedrock it was the only point (the longest prefix), and a
    long conversation was never cached. Its text is now counted in the system prompt's prefix, and it gets no point of
    a turn: only the system prompt's, which ends with the last system message's text once joined."""
    turns = [
        Message("user", "Read this: " + "words " * 3000),
        Message("assistant", "Read."),
        Message("system", "From now on answer in one word."),
        Message("user", "Summary?"),
    ]
    request = ChatRequest(model=SONNET, messages=turns)
    for model, region in ((SONNET, "us-east-1"), ("claude-sonnet-4-5-20250929", None)):
        placed, placements = auto_cache(request, model, region=region)
        assert placements and "message:2" not in [p.after for p in placements]
        assert not placed.messages[2].cache_point and placed.messages[1].cache_point
    # Alone, it is the system prompt the point goes after.
    alone = ChatRequest(model=SONNET, messages=[Message("system", POLICY_TEXT), Message("user", "hi")])
    placed, placements = auto_cache(alone, SONNET, region="us-east-1")
    assert [p.after for p in placements] == ["system"] and system_hoisted(placed).system_cache_point
    # After an opening prompt, the point is the joined prompt's end, not the opening prompt's (which would cache the
    # shorter prefix the placement did not count).
    joined = ChatRequest(model=SONNET, system="Rules.", messages=[Message("system", POLICY_TEXT), Message("user", "?")])
    placed, placements = auto_cache(joined, SONNET, region="us-east-1")
    hoisted = system_hoisted(placed)
    assert [p.after for p in placements] == ["system"] and hoisted.system_cache_point and not hoisted.system_breaks


def test_a_callers_top_level_cache_control_is_its_own_point():
    """Anthropic's automatic caching (`cache_control` at the top of the request) caches at the last block and takes
    one of the 4 breakpoints: automatic placement beside it sent Claude 5 and the call was refused upstream."""
    turns = []
    for i in range(4):
        turns += [{"role": "user", "content": f"Turn {i} " + "words " * 1500}, {"role": "assistant", "content": "ok"}]
    body = {
        "model": "claude",
        "max_tokens": 5,
        "system": "sys " * 2000,
        "messages": [*turns, {"role": "user", "content": "final?"}],
        "cache_control": {"type": "ephemeral"},
    }
    request = request_from_anthropic(body)
    request = replace(request[0] if isinstance(request, tuple) else request, model="claude-sonnet-4-5-20250929")
    placed, placements = auto_cache(request, "claude-sonnet-4-5-20250929")
    assert placements == [] and placed is request
    without = replace(request, extra={k: v for k, v in request.extra.items() if k != "cache_control"})
    assert len(auto_cache(without, "claude-sonnet-4-5-20250929")[1]) == 4


def test_no_points_for_models_without_explicit_caching():
    request = ChatRequest.simple("Hi", system=POLICY_TEXT)
    assert auto_cache(request, "gpt-4o")[1] == []  # OpenAI caches automatically
    assert auto_cache(request, "anthropic.claude-3-haiku-20240307-v1:0")[1] == []  # no cache prices on Bedrock


def test_token_policy_caps_truncates_and_warns():
    request = conversation("Keep me.", turns=5)
    request.max_tokens = None
    capped, warnings = apply_token_policy(request, TokenPolicy(max_tokens=64, max_turns=3))
    assert capped.max_tokens == 64 and capped.system == "Keep me."
    assert [m.role for m in capped.messages] == ["user", "assistant", "user"]
    assert capped.messages[-1].text == "And now?"
    _, warnings = apply_token_policy(request, TokenPolicy())
    assert any("no output cap" in w for w in warnings)
    trimmed, _ = apply_token_policy(conversation("s", turns=5), TokenPolicy(max_history_tokens=450))
    assert len(trimmed.messages) < 11 and trimmed.messages[0].role == "user"


def test_truncation_keeps_a_mid_conversation_system_message_it_would_cut():
    # An agent's instruction given mid-run ("two tool calls left") was cut away with the old turns around it.
    turns = [
        Message("user", "u1"),
        Message("assistant", "a1"),
        Message("system", "Be brief."),
        Message("user", "u2"),
        Message("assistant", "a2"),
        Message("user", "u3"),
    ]
    request = ChatRequest(messages=turns, system="Keep me.", max_tokens=8)
    trimmed, warnings = apply_token_policy(request, TokenPolicy(max_turns=2))
    assert [(m.role, m.text) for m in trimmed.messages] == [("system", "Be brief."), ("user", "u3")]
    assert trimmed.system == "Keep me." and any("history truncated from 6 to 2" in w for w in warnings)
    kept, _ = apply_token_policy(request, TokenPolicy(max_turns=4))  # in the window: it stays where it was
    assert [m.text for m in kept.messages] == ["Be brief.", "u2", "a2", "u3"]


@pytest.fixture
def telemetry():
    return in_memory_pipeline()


@pytest.mark.slow
def test_bedrock_call_gets_automatic_cache_point_then_reads_it(telemetry, ledger_path):
    exporter, reader = telemetry
    with ServerThread(create_app()) as url:
        spec = {
            "sonnet": ModelSpec(name="sonnet", provider="bedrock", model=SONNET, region="us-east-1", endpoint_url=url)
        }
        with Tokenomy(ledger_path, models=spec) as client:
            first = client.chat(
                ChatRequest.simple("Which class ships fastest?", model="sonnet", system=POLICY_TEXT, max_tokens=4)
            )
            second = client.chat(
                ChatRequest.simple("Which class ships slowest?", model="sonnet", system=POLICY_TEXT, max_tokens=4)
            )
            second_placements = client.last_placements
            short = client.chat(ChatRequest.simple("Hi", model="sonnet", system="You are terse.", max_tokens=4))
            short_placements = client.last_placements
    assert first.usage.cache_write_tokens > 1024 and first.usage.cache_read_tokens == 0
    assert [p.after for p in second_placements] == ["system"] and short_placements == []
    assert short.usage.cache_write_tokens == short.usage.cache_read_tokens == 0  # below the minimum: no point
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens and second.usage.cache_write_tokens == 0
    for response in (first, second):
        expected = compute_cost(response.usage, SONNET, "us-east-1")
        assert response.cost_usd == expected.total_usd
    # Writing costs 3.75/M, reading 0.30/M: the second call's prefix costs 12.5x less.
    events = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)[:2]
    assert events[0].cache_write_cost_usd == Decimal(first.usage.cache_write_tokens) * Decimal("3.75") / 1_000_000
    assert events[1].cache_read_cost_usd == Decimal(second.usage.cache_read_tokens) * Decimal("0.30") / 1_000_000
    span = [s for s in exporter.get_finished_spans() if s.name == f"chat {SONNET}"][-2]
    attrs = dict(span.attributes)
    assert span.kind == trace.SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "aws.bedrock"
    assert attrs["gen_ai.request.model"] == SONNET and attrs["gen_ai.response.model"] == SONNET
    assert attrs["gen_ai.usage.input_tokens"] == second.usage.total_input_tokens  # includes cached tokens
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == second.usage.cache_read_tokens
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 0
    assert attrs["gen_ai.usage.output_tokens"] == second.usage.output_tokens
    assert attrs["tokenomy.cost.usd"] == pytest.approx(float(second.cost_usd))
    names = {m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= names


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_anthropic_few_shot_turns_get_a_cache_point_through_the_sdk(telemetry, ledger_path, monkeypatch):
    from tokenomy.emulate.anthropic_api import create_app as anthropic_app

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-emulator")
    exporter, _ = telemetry
    exporter.clear()
    shots = []
    for i in range(2):  # two few-shot pairs of ~300 estimated tokens per message
        shots.append(Message("user", f"Example {i}: " + " ".join(f"item {i}.{k} costs {k} euros;" for k in range(48))))
        shots.append(Message("assistant", f"Total {i}: " + " ".join(f"{k}" for k in range(240))))
    model = "claude-sonnet-4-5-20250929"
    with ServerThread(anthropic_app()) as url:
        spec = {"claude": ModelSpec(name="claude", provider="anthropic", model=model, base_url=url)}
        with Tokenomy(ledger_path, models=spec) as client:
            answers = []
            for question in ("Total for example 1?", "Total for example 0?"):
                request = ChatRequest(
                    messages=[*shots, Message("user", question)],
                    model="claude",
                    system="Answer with a number.",
                    max_tokens=4,
                )
                answers.append(client.chat(request))
                placements = client.last_placements
    # The short system prompt is below Sonnet 4.5's 1,024-token minimum; the longest prefix (all shots) is not.
    after = [p.after for p in placements]
    assert after[-1] == "message:3" and "system" not in after and "message:0" not in after
    assert all(p.prefix_tokens >= 1024 for p in placements)
    first, second = answers
    assert first.usage.cache_write_tokens > 1024 and second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.cost_usd == compute_cost(second.usage, model).total_usd
    spans = [s for s in exporter.get_finished_spans() if s.name == f"chat {model}"]
    assert [s.attributes["gen_ai.provider.name"] for s in spans] == ["anthropic", "anthropic"]
    assert spans[0].attributes["gen_ai.usage.cache_creation.input_tokens"] == first.usage.cache_write_tokens
    assert spans[1].attributes["gen_ai.usage.cache_read.input_tokens"] == second.usage.cache_read_tokens


def test_the_input_estimate_counts_what_the_words_leave_out():
    """Budget reservations and rate limits take this estimate: tool definitions, earlier calls' arguments, an
    image inside a tool result, documents and reasoning sent back all cost input tokens."""
    from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS, estimate_input_tokens
    from tokenomy.messages import (
        ChatRequest,
        DocumentBlock,
        ImageBlock,
        Message,
        ReasoningBlock,
        TextBlock,
        ToolResultBlock,
        ToolUseBlock,
    )
    from tokenomy.request_options import ToolSpec

    words = ChatRequest(messages=[Message("user", "x" * 400)], system="s" * 40)
    assert estimate_input_tokens(words) == 110 == (len(words.text()) + 3) // 4
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    agent = ChatRequest(
        messages=[
            Message("user", [TextBlock("x" * 400), DocumentBlock("pdf", b"%PDF"), DocumentBlock("csv", b"a," * 200)]),
            Message("assistant", [ReasoningBlock("r" * 80), ToolUseBlock("c1", "shot", {}, '{"page": 1}' + " " * 69)]),
            Message("user", [ToolResultBlock("c1", [TextBlock("t" * 40), ImageBlock("image/png", b"\x89PNG")])]),
        ],
        tools=[ToolSpec("shot", "d" * 100, schema)],
    )
    definition = len("shot") + 100 + len('{"type":"object","properties":{"city":{"type":"string"}}}')
    chars = 400 + 80 + len("shot") + 80 + 40 + definition
    assert estimate_input_tokens(agent) == (chars + 3) // 4 + DOCUMENT_TOKENS + 100 + IMAGE_TOKENS


def test_a_pdf_is_estimated_per_page_also_when_its_pages_are_in_compressed_object_streams():
    import zlib

    from tokenomy.caching.placement import DOCUMENT_TOKENS, estimate_input_tokens
    from tokenomy.messages import ChatRequest, DocumentBlock, Message

    def pdf_tokens(data: bytes) -> int:
        return estimate_input_tokens(ChatRequest(messages=[Message("user", [DocumentBlock("pdf", data)])]))

    plain = b"%PDF-1.4 2 0 obj << /Type /Pages /Count 2 >> 3 0 obj << /Type /Page >> 4 0 obj <</Type/Page>>"
    packed = zlib.compress(b"3 0 4 40 << /Type /Page /Parent 2 0 R >> << /Type /Page /Parent 2 0 R >>" * 2)
    modern = b"%PDF-1.7 5 0 obj << /Type /ObjStm /N 4 /Filter /FlateDecode >>\nstream\n" + packed + b"\nendstream"
    assert pdf_tokens(plain) == 2 * DOCUMENT_TOKENS  # the page tree's /Type /Pages is not a page
    assert pdf_tokens(modern) == 4 * DOCUMENT_TOKENS
    assert pdf_tokens(b"%PDF-1.7 unreadable") == DOCUMENT_TOKENS


def test_a_document_made_of_content_blocks_is_estimated_by_its_content_and_context():
    """Anthropic's content source carries a document as text (and image) blocks and `context` is read too: both are
    billed input. Such a document was reserved as one PDF page whatever its length, so a long one overspent."""
    from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS, estimate_input_tokens
    from tokenomy.messages import ChatRequest, DocumentBlock, ImageBlock, Message, TextBlock

    pages = [TextBlock("p" * 40_000), TextBlock("q" * 20_000), ImageBlock("image/png", b"\x89PNG")]
    cited = DocumentBlock("txt", content=pages, context="c" * 400, citations=True)
    request = ChatRequest(messages=[Message("user", [cited, TextBlock("Summarise.")])])
    assert estimate_input_tokens(request) == (60_000 + 400 + len("Summarise.") + 3) // 4 + IMAGE_TOKENS
    assert estimate_input_tokens(request) > 10 * DOCUMENT_TOKENS


def test_a_callers_cache_point_inside_a_message_is_respected_not_added_to():
    # A caller's point on a document block before the question is its own placement: points added beside it could
    # pass the 4 Claude takes, and would move what the caller chose to cache.
    request = conversation(POLICY_TEXT, turns=4)
    request.messages[-1] = Message("user", [TextBlock("doc " * 600), TextBlock("And now?")], block_points=((0, True),))
    placed, placements = auto_cache(request, SONNET)
    assert placements == [] and placed is request
