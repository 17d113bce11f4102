"""Routing inside the call policy: a routed request gets the route's token cap, retries, fallbacks and budget
reservation on every tier it tries, streams as it arrives, and a cascade escalates on a failing validator.

Upstreams are recording OpenAI-format servers on 127.0.0.1; the gateway is reached with the official SDK."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from decimal import Decimal

import openai
import pytest

from helpers.recording_openai import PATCH, RecordingOpenAI
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.caching.placement import input_bound
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ConfigError
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.messages import ChatRequest, Message, RequestMeta
from tokenomy.pricing.catalog import default_catalog
from tokenomy.request_options import ToolSpec
from tokenomy.routing.router import build_router

CHEAP, DEAR = "gpt-4o-mini", "gpt-4o"
ANSWER = ('{"name": ', '"Tom"}')  # valid JSON in two stream deltas
HEDGE = ("I'm not sure, ", "maybe Tom")  # fails the default hedging validator


@pytest.fixture
def upstreams():
    servers: dict[str, ScriptedOpenAI] = {}

    def make(name: str, reply: tuple[str, ...] = ANSWER, script: list | None = None) -> ScriptedOpenAI:
        servers[name] = ScriptedOpenAI(script or [], reply)
        return servers[name]

    yield make
    for server in servers.values():
        server.close()


def _config(urls: dict[str, str], **extra) -> dict:
    # Tiers listed dearest first, none named tier1: the default tier must come from prices, not names.
    prices = {"big": DEAR, "small": CHEAP, "small2": CHEAP, "spare": CHEAP}
    return {
        "models": {
            name: {"provider": "openai", "model": name, "base_url": url, "price_as": prices[name]}
            for name, url in urls.items()
        },
        "tiers": {"premium": ["big"], "basic": ["small"]},
        "routes": {
            "smart": {"policy": "rules", "tokens": {"max_tokens": 16}},
            "extract": {"policy": "cascade", "tokens": {"max_tokens": 16}},
        },
        "routing": {
            "policies": {
                "rules": {"type": "rules", "rules": [{"name": "reasoning", "tier": "premium", "keywords": ["prove"]}]},
                "cascade": {"type": "cascade", "tiers": ["basic", "premium"], "validators": {"json": True}},
            }
        },
        **extra,
    }


def _blind_cheap_tier(urls: dict[str, str]) -> dict:
    """`_config` whose cheapest tier's model reads text only: an image request passes it up unsent."""
    data = _config(urls)
    data["models"]["small"]["inputs"] = ["text"]
    return data


def _image_request() -> ChatRequest:
    from tokenomy.messages import ImageBlock, TextBlock

    return ChatRequest(
        messages=[Message("user", [TextBlock("Name as JSON."), ImageBlock(media_type="image/png", data=b"\x89PNG")])],
        model="extract",
        meta=RequestMeta(route="extract"),
    )


def _agent_cascade(small: RecordingOpenAI, big: RecordingOpenAI):
    """Route `agent`: a cascade with no validators of its own from `small` (tier basic) to `big` (premium)."""
    return parse_config(
        {
            "models": {
                "small": {"provider": "openai", "model": "small", "base_url": small.url, "price_as": CHEAP},
                "big": {"provider": "openai", "model": "big", "base_url": big.url, "price_as": DEAR},
            },
            "tiers": {"premium": ["big"], "basic": ["small"]},
            "routes": {"agent": {"policy": "cascade"}},
            "routing": {"policies": {"cascade": {"type": "cascade", "tiers": ["basic", "premium"], "validators": {}}}},
        }
    )


def _rows(ledger_path) -> list[dict]:
    rows = open_store(ledger_path).query(
        "SELECT route, tier, model, attempt, outcome, tags, request_id FROM usage_events ORDER BY ts, attempt"
    )
    for row in rows:
        row["tags"] = json.loads(row["tags"]) if isinstance(row["tags"], str) else (row["tags"] or {})
    return rows


def test_default_tier_is_the_cheapest_not_one_named_tier1(upstreams):
    cfg = parse_config(_config({"big": "http://127.0.0.1:9/v1", "small": "http://127.0.0.1:9/v1"}))
    router = build_router(cfg, "rules")
    assert router.route(ChatRequest.simple("hello")).decision.tier == "basic"  # listed second, priced lower
    assert router.route(ChatRequest.simple("prove it")).decision.tier == "premium"
    # Equal prices: the first listed wins.
    tied = parse_config(
        {**_config({"big": "http://x/v1", "small": "http://x/v1"}), "tiers": {"premium": ["small"], "basic": ["small"]}}
    )
    assert build_router(tied, "rules").route(ChatRequest.simple("hello")).decision.tier == "premium"


def test_routing_config_is_typed_at_load_with_errors_naming_the_key():
    base = _config({"big": "http://x/v1", "small": "http://x/v1"})
    with pytest.raises(ConfigError, match=r"routing\.policies\.rules\.rules\.0\.min_tokens"):
        parse_config(
            {
                **base,
                "routing": {"policies": {"rules": {"rules": [{"name": "n", "tier": "basic", "min_tokens": "many"}]}}},
            }
        )
    with pytest.raises(ConfigError, match=r"routing\.policies\.rules\.rules\[0\]\.tier: tier 'gold'"):
        parse_config(
            {
                **base,
                "routing": {
                    "policies": {"rules": {"rules": [{"name": "n", "tier": "gold"}]}, "cascade": {"type": "cascade"}}
                },
            }
        )
    with pytest.raises(ConfigError, match=r"routing\.policies\.cascade\.validators: .*unknown validator 'jsn'"):
        parse_config({**base, "routing": {"policies": {"rules": {}, "cascade": {"validators": {"jsn": True}}}}})
    with pytest.raises(ConfigError, match=r"routes\.smart\.retry\.max_attempts"):
        parse_config({**base, "routes": {"smart": {"policy": "rules", "retry": {"max_attempts": 0}}}})
    with pytest.raises(ConfigError, match=r"routes\.r\.policy: routing needs tiers"):
        parse_config({"routes": {"r": {"policy": "c"}}, "routing": {"policies": {"c": {"type": "cascade"}}}})
    cfg = parse_config(base)
    assert cfg.routing.policies["cascade"].validators == {"json": True}
    assert cfg.routes["smart"].tokens.max_tokens == 16


def test_gateway_routed_call_sends_the_route_cap_to_every_tier_and_streams(upstreams, ledger_path):
    big, small = upstreams("big"), upstreams("small")
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        plain = client.chat.completions.create(
            model="smart", max_tokens=500, messages=[{"role": "user", "content": "Say hello."}]
        )
        proven = client.chat.completions.create(
            model="smart", max_tokens=500, messages=[{"role": "user", "content": "Prove it."}]
        )
        stream = client.chat.completions.create(
            model="smart", stream=True, messages=[{"role": "user", "content": "Prove it again."}]
        )
        deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert plain.model_dump()["tokenomy"]["tier"] == "basic" and proven.model_dump()["tokenomy"]["tier"] == "premium"
    # The route's cap reached whichever tier answered (the request asked for 500, the stream for none).
    assert [b["max_tokens"] for b in small.bodies] == [16]
    assert [b["max_tokens"] for b in big.bodies] == [16, 16]
    assert big.bodies[1]["stream"] is True
    assert deltas == list(ANSWER)  # several chunks, as the tier produced them
    assert [(r["route"], r["tier"]) for r in _rows(ledger_path)] == [
        ("smart", "basic"),
        ("smart", "premium"),
        ("smart", "premium"),
    ]


def test_gateway_budget_reservation_uses_the_cap_the_route_applies(upstreams, ledger_path):
    big, small = upstreams("big"), upstreams("small")
    cfg = parse_config(_config({"big": big.url, "small": small.url}, auth=True))
    prompt = "y" * 4000
    dear = default_catalog().lookup(DEAR)
    tokens = input_bound(ChatRequest([Message("user", prompt)]))[0]  # the prompt's upper bound, which is reserved

    def worst_case(output_tokens: int) -> Decimal:  # the dearest tier model, prompt at its dearest input rate
        rate = max(dear.input, dear.cache_write or 0)
        return (Decimal(tokens) * rate + Decimal(output_tokens) * dear.output) / 1_000_000

    capped, uncapped = worst_case(16), worst_case(500)
    keys = KeyStore(open_store(ledger_path))
    fits, _ = keys.create(budget_usd=(capped + uncapped) / 2, period="day")  # enough only if the cap is counted
    short, _ = keys.create(budget_usd=capped * Decimal("0.9"), period="day")
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:

        def ask(secret: str):
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            return client.chat.completions.create(
                model="smart", max_tokens=500, messages=[{"role": "user", "content": prompt}]
            )

        assert ask(fits).choices[0].message.content == "".join(ANSWER)
        with pytest.raises(openai.RateLimitError) as refused:
            ask(short)
    assert [b["max_tokens"] for b in small.bodies] == [16]
    assert f"could cost up to ${capped:.6f}" in str(refused.value)


def test_gateway_cascade_escalates_streams_the_passing_tier_and_records_both(upstreams, ledger_path):
    big, small = upstreams("big"), upstreams("small", HEDGE)
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="extract", stream=True, messages=[{"role": "user", "content": "Name as JSON."}]
        )
        deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        reply = client.chat.completions.create(model="extract", messages=[{"role": "user", "content": "Again."}])
    assert deltas == list(ANSWER)  # the hedging answer never reached the caller
    assert reply.choices[0].message.content == "".join(ANSWER) and reply.model_dump()["tokenomy"]["tier"] == "premium"
    assert [b["max_tokens"] for b in small.bodies + big.bodies] == [16] * 4
    rows = _rows(ledger_path)
    assert [(r["tier"], r["attempt"], r["outcome"], r["tags"].get("cascade_escalated")) for r in rows] == [
        ("basic", 1, "ok", None),
        ("premium", 2, "ok", "1"),
        ("basic", 1, "ok", None),
        ("premium", 2, "ok", "1"),
    ]
    assert rows[0]["request_id"] == rows[1]["request_id"] != rows[2]["request_id"]


def test_a_tier_passed_up_by_a_refusal_is_not_an_escalation(upstreams, ledger_path):
    """An image the text-only cheap tier cannot take goes up before anything is sent: no answer failed, so the
    strong tier's attempt is tagged `passed_up`, not `cascade_escalated`. Before, it counted as an escalation and
    not as a request: two requests, one escalated, read as 200%."""
    from tokenomy.routing.drift import escalation_rates

    big, small = upstreams("big"), upstreams("small", HEDGE)
    data = _blind_cheap_tier({"big": big.url, "small": small.url})
    cfg = parse_config(data)
    image = _image_request()
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        client.chat(image, policy=CallPolicy.for_route(cfg, "extract"))  # passed up: the cheap tier is blind
        client.chat(
            ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract")),
            policy=CallPolicy.for_route(cfg, "extract"),
        )  # answered by the cheap tier, rejected: escalated
    rows = _rows(ledger_path)
    assert [(r["tier"], r["outcome"], r["tags"]) for r in rows] == [
        ("basic", "client_error", {}),
        ("premium", "ok", {"passed_up": "1"}),
        ("basic", "ok", {"cascade_rejected": "hedging", "cascade_reason": 'hedging language: "i\'m not sure"'}),
        ("premium", "ok", {"cascade_escalated": "1"}),
    ]
    assert small.calls == 1 and big.calls == 2
    [rate] = escalation_rates(open_store(ledger_path), cfg)
    assert (rate["calls"], rate["escalations"], rate["rate"]) == (2, 1, 0.5)


def test_cascade_passing_cheap_tier_is_held_then_streamed(upstreams, ledger_path):
    big, small = upstreams("big"), upstreams("small")
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    request = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        chunks = list(client.stream(request, policy=CallPolicy.for_route(cfg, "extract")))
    assert [c.delta for c in chunks if c.delta] == list(ANSWER)
    assert chunks[-1].response is not None and chunks[-1].response.tier == "basic"
    assert big.calls == 0 and [r["tier"] for r in _rows(ledger_path)] == ["basic"]


def test_retries_and_fallbacks_apply_inside_a_routed_call(upstreams, ledger_path):
    # The cheap tier lists two models (the second is its fallback); the route adds one more fallback.
    flaky = upstreams("small", script=[(503, {}), (500, {})])
    down = upstreams("small2", script=[(503, {})] * 10)
    spare, big = upstreams("spare"), upstreams("big")
    data = _config({"big": big.url, "small": flaky.url, "small2": down.url, "spare": spare.url})
    data["tiers"]["basic"] = ["small", "small2"]
    data["routes"]["smart"].update(fallback=["spare"], retry={"max_attempts": 2, "base_delay_s": 0.01})
    cfg = parse_config(data)
    policy = CallPolicy.for_route(cfg, "smart")
    with Tokenomy(ledger_path, models=cfg.model_specs(), seed=1) as client:
        answer = client.chat(
            ChatRequest.simple("hello", model="smart", max_tokens=400, meta=RequestMeta(route="smart")), policy=policy
        )
        streamed = list(
            client.stream(ChatRequest.simple("hello", model="smart", meta=RequestMeta(route="smart")), policy=policy)
        )
    assert answer.text == "".join(ANSWER) and answer.tier == "basic" and answer.attempts == 5
    assert streamed[-1].response.tier == "basic" and streamed[-1].response.model == "small"
    rows = _rows(ledger_path)
    first = [(r["model"], r["attempt"], r["outcome"]) for r in rows if r["request_id"] == rows[0]["request_id"]]
    assert first == [
        ("small", 1, "server_error"),
        ("small", 2, "server_error"),
        ("small2", 3, "server_error"),
        ("small2", 4, "server_error"),
        ("spare", 5, "ok"),
    ]
    assert {r["tier"] for r in rows} == {"basic"} and {r["route"] for r in rows} == {"smart"}
    assert {b["max_tokens"] for s in (flaky, down, spare) for b in s.bodies} == {16}
    assert big.calls == 0


def test_async_cascade_streams_after_escalation_and_the_rate_limit_covers_every_tier(upstreams, ledger_path):
    import asyncio

    from tokenomy.errors import ProviderError

    big, small = upstreams("big"), upstreams("small", HEDGE)
    data = _config({"big": big.url, "small": small.url})
    data["routes"]["slow"] = {
        "policy": "cascade",
        "rate_limit": {"requests_per_minute": 1},
        "retry": {"deadline_s": 0.5},
    }
    cfg = parse_config(data)

    async def run(client: Tokenomy, route: str) -> list:
        request = ChatRequest.simple("Name as JSON.", model=route, meta=RequestMeta(route=route))
        return [chunk async for chunk in client.astream(request, policy=CallPolicy.for_route(cfg, route))]

    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        chunks = asyncio.run(run(client, "extract"))
        # One request a minute: the cheap tier takes it, so the escalation has no slot within the deadline.
        with pytest.raises(ProviderError, match="client-side rate limit"):
            asyncio.run(run(client, "slow"))
    assert [c.delta for c in chunks if c.delta] == list(ANSWER) and chunks[-1].response.tier == "premium"
    assert [(r["route"], r["tier"], r["attempt"]) for r in _rows(ledger_path)] == [
        ("extract", "basic", 1),
        ("extract", "premium", 2),
        ("slow", "basic", 1),
    ]
    assert big.calls == 1 and small.calls == 2


@pytest.mark.parametrize("stream", [False, True])
def test_cascade_accepts_a_cheap_tool_call_and_escalates_a_schema_invalid_one(stream):
    """An answer that calls a tool has no text: it is judged on its call (offered, arguments valid against the tool's
    schema), not rejected as empty output, which sent every agent's tool call to the dearest tier."""
    with RecordingOpenAI() as small, RecordingOpenAI() as big:
        cfg = _agent_cascade(small, big)
        policy = CallPolicy.for_route(cfg, "agent")
        city = {"type": "object", "properties": {"city": {"type": "string"}, "tool": {"type": "string"}}}
        strict = {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}
        with Tokenomy(record=False, models=cfg.model_specs()) as client:
            for schema, tier in ((city, "basic"), (strict, "premium")):  # the upstream sends {"city", "tool"}
                request = ChatRequest(
                    [Message("user", "weather in Paris?")],
                    model="agent",
                    max_tokens=50,
                    tools=[ToolSpec("get_weather", input_schema=schema)],
                )
                answer = (
                    list(client.stream(request, policy=policy))[-1].response
                    if stream
                    else client.chat(request, policy=policy)
                )
                assert answer.tier == tier and [c.name for c in answer.tool_calls] == ["get_weather"]
        assert (len(small.bodies), len(big.bodies)) == (2, 1)


def test_cascade_accepts_a_cheap_freeform_call_whose_raw_text_is_no_json():
    """A freeform (custom) tool's call is raw text under the tool's grammar, which the provider holds the model to:
    judged as JSON arguments it was "malformed", and every Codex apply_patch went on to the dearest tier."""
    with RecordingOpenAI() as small, RecordingOpenAI() as big:
        cfg = _agent_cascade(small, big)
        request = ChatRequest(
            [Message("user", "add hello.txt")],
            model="agent",
            max_tokens=50,
            tools=[ToolSpec("apply_patch", freeform={"type": "text"})],
        )
        with Tokenomy(record=False, models=cfg.model_specs()) as client:
            answer = client.chat(request, policy=CallPolicy.for_route(cfg, "agent"))
        [call] = answer.tool_calls
        assert answer.tier == "basic" and (call.freeform, call.arguments) == (True, PATCH)
        assert (len(small.bodies), len(big.bodies)) == (1, 0)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "required": "name"},
        {"type": "object", "properties": {"name": {"type": "string", "pattern": "("}}},
    ],
)
def test_cascade_judges_an_answer_to_a_schema_jsonschema_cannot_check_without_a_500(upstreams, ledger_path, schema):
    """A response_format schema the upstream took but jsonschema cannot check (a `required` that is no list, a
    pattern Python's re cannot compile) made the validators raise after the cheap tier's answer was paid: the caller
    got a 500. The answer is judged as JSON without that schema, as a tool call's arguments already were."""
    big, small = upstreams("big"), upstreams("small")
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="extract",
            messages=[{"role": "user", "content": "Name as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        )
    assert reply.choices[0].message.content == "".join(ANSWER) and reply.model_dump()["tokenomy"]["tier"] == "basic"
    assert small.bodies[0]["response_format"]["json_schema"]["schema"] == schema and big.calls == 0
    assert [(r["tier"], r["outcome"]) for r in _rows(ledger_path)] == [("basic", "ok")]


def test_a_cascade_schema_validator_jsonschema_cannot_check_is_refused_at_load():
    base = _config({"big": "http://x/v1", "small": "http://x/v1"})
    bad = {
        "type": "cascade",
        "tiers": ["basic", "premium"],
        "validators": {"schema": {"type": "object", "required": "n"}},
    }
    with pytest.raises(ConfigError, match=r"routing\.policies\.cascade\.validators: .*schema is not a JSON schema"):
        parse_config({**base, "routing": {"policies": {"rules": {}, "cascade": bad}}})


@pytest.mark.parametrize("ref", ["#/$defs/Missing", "https://schemas.example/person.json"])
def test_a_cascade_schema_validator_whose_ref_does_not_resolve_is_refused_at_load(ref):
    # check_schema passed it; at run time jsonschema could not resolve the $ref, so every answer was judged without
    # the schema: a validator the route named that never ran.
    base = _config({"big": "http://x/v1", "small": "http://x/v1"})
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"$ref": ref}},
        "$defs": {"A": {"type": "string"}},
    }
    bad = {"type": "cascade", "tiers": ["basic", "premium"], "validators": {"schema": schema}}
    with pytest.raises(
        ConfigError,
        match=r"routing\.policies\.cascade\.validators: .*schema's \$ref "
        + re.escape(repr(ref))
        + r" does not resolve",
    ):
        parse_config({**base, "routing": {"policies": {"rules": {}, "cascade": bad}}})
    good = {
        "type": "cascade",
        "tiers": ["basic", "premium"],
        "validators": {"schema": {**schema, "properties": {"a": {"$ref": "#/$defs/A"}}}},
    }
    parse_config({**base, "routing": {"policies": {"rules": {}, "cascade": good}}})


@pytest.mark.parametrize("validators", [{}, {"json": True}])
def test_a_rule_to_a_tier_outside_the_policys_tiers_is_reserved_at_that_tiers_price(upstreams, ledger_path, validators):
    """A rule may name any tier under `tiers:`, not only the policy's `tiers`; the budget reservation counted only the
    policy's tiers, so a key was reserved at the cheap model's price and charged the dear one's: $0.001 spent 3.5x."""
    big, small = upstreams("big"), upstreams("small")
    data = _config({"big": big.url, "small": small.url}, auth=True)
    data["routing"]["policies"]["rules"].update(tiers=["basic"], validators=validators)
    cfg = parse_config(data)
    keys = KeyStore(open_store(ledger_path))
    secret, _ = keys.create(budget_usd=Decimal("0.001"), period="day")
    prompt = "prove " + "word " * 700  # the rule sends it to premium, where it may cost ~$0.0019, the cap counted
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError, match="could cost up to"):
            client.chat.completions.create(model="smart", messages=[{"role": "user", "content": prompt}])
    assert big.calls == small.calls == 0
    assert build_router(cfg, "rules").models() == ["small", "big"]


def test_an_escalation_after_a_tier_was_passed_up_counts_as_the_first(upstreams, ledger_path):
    """The escalation tag carried the tier's index, so a request whose image passed the text-only cheapest tier up and
    whose middle tier's answer was then rejected was tagged `cascade_escalated: "2"`: route drift and the training
    labels, which count an escalated request by its first escalation ("1"), missed it (0% escalation reported)."""
    from tokenomy.routing.drift import escalation_rates

    big, mid, small = upstreams("big"), upstreams("small2", HEDGE), upstreams("small")
    data = _blind_cheap_tier({"big": big.url, "small": small.url, "small2": mid.url})
    data["tiers"]["middle"] = ["small2"]
    data["routing"]["policies"]["cascade"]["tiers"] = ["basic", "middle", "premium"]
    cfg = parse_config(data)
    image = _image_request()
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        assert client.chat(image, policy=CallPolicy.for_route(cfg, "extract")).tier == "premium"
    rows = _rows(ledger_path)
    assert [(r["tier"], r["outcome"], r["tags"]) for r in rows] == [
        ("basic", "client_error", {}),
        (
            "middle",
            "ok",
            {"passed_up": "1", "cascade_rejected": "hedging", "cascade_reason": 'hedging language: "i\'m not sure"'},
        ),
        ("premium", "ok", {"cascade_escalated": "1"}),
    ]
    [rate] = escalation_rates(open_store(ledger_path), cfg)
    assert (rate["calls"], rate["escalations"]) == (1, 1)


def test_cascade_escalates_a_json_object_request_answered_with_prose(upstreams, ledger_path):
    """A caller's `response_format: json_object` asks for JSON as a schema does; the validators checked JSON only for
    a schema (or `json: true` in the config), so the cheap tier's prose reached a caller that asked for JSON."""
    big, small = upstreams("big"), upstreams("small", ("Tom is", " the name."))
    data = _config({"big": big.url, "small": small.url})
    data["routing"]["policies"]["cascade"]["validators"] = {}
    cfg = parse_config(data)
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        asked = client.chat.completions.create(
            model="extract",
            messages=[{"role": "user", "content": "Name as JSON."}],
            response_format={"type": "json_object"},
        )
        prose = client.chat.completions.create(model="extract", messages=[{"role": "user", "content": "Name it."}])
    assert asked.choices[0].message.content == "".join(ANSWER) and asked.model_dump()["tokenomy"]["tier"] == "premium"
    assert prose.model_dump()["tokenomy"]["tier"] == "basic"  # no JSON asked for: prose passes
    assert small.bodies[0]["response_format"] == {"type": "json_object"} == big.bodies[0]["response_format"]


def test_report_tier_share_counts_answered_calls_as_route_drift_does(upstreams, ledger_path):
    """`report tier-share` (and the dashboard's tier panel) counted every attempt: a cheap tier that refused an image
    before sending anything, and each failed retry, counted as that tier's call, so two requests both answered by the
    strong tier read as 50% cheap; `route drift`, which counts answered calls, said 0%."""
    from tokenomy.analytics.reports import run_report
    from tokenomy.routing.drift import tier_share

    big, small = upstreams("big"), upstreams("small")
    cfg = parse_config(_blind_cheap_tier({"big": big.url, "small": small.url}))
    image = _image_request()
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        for _ in range(2):
            assert client.chat(image, policy=CallPolicy.for_route(cfg, "extract")).tier == "premium"
    store = open_store(ledger_path)
    assert [r["outcome"] for r in _rows(ledger_path)] == ["client_error", "ok"] * 2
    shares = {r["tier"]: r["share"] for r in run_report(store, "tier-share", expected={"basic": 0.5})}
    assert shares == {"premium": 1.0, "basic": 0.0}
    assert {r["tier"]: r["share"] for r in tier_share(store)} == {"premium": 1.0}


def test_a_cascade_validator_that_cannot_run_is_refused_before_any_call():
    """A regex Python cannot compile, or a python validator that cannot be imported, loaded and was found on each
    request after the cheap tier's answer was paid for: every call on the route failed with a 500."""
    base = _config({"big": "http://x/v1", "small": "http://x/v1"})
    regex = {"type": "cascade", "tiers": ["basic", "premium"], "validators": {"regex": "(unclosed"}}
    with pytest.raises(ConfigError, match=r"routing\.policies\.cascade\.validators: .*regex '\(unclosed'"):
        parse_config({**base, "routing": {"policies": {"rules": {}, "cascade": regex}}})
    python = {"type": "cascade", "tiers": ["basic", "premium"], "validators": {"python": "no_such_module:check"}}
    cfg = parse_config({**base, "routing": {"policies": {"rules": {}, "cascade": python}}})
    with pytest.raises(ConfigError, match=r"'no_such_module:check' cannot be imported"):
        CallPolicy.for_route(cfg, "extract")


def test_a_python_validator_that_raises_on_an_answer_escalates_it_instead_of_failing_the_call(upstreams, ledger_path):
    """A `module:function` validator that raises on an answer it did not expect (here `json:loads` on prose) failed
    the call with a 500 after the cheap answer was paid for; it is a rejection: the call escalates."""
    big, small = upstreams("big"), upstreams("small", ("Tom is", " the name."))
    data = _config({"big": big.url, "small": small.url})
    data["routing"]["policies"]["cascade"]["validators"] = {"python": "json:loads"}
    cfg = parse_config(data)
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model="extract", messages=[{"role": "user", "content": "Name it."}])
    assert answer.choices[0].message.content == "".join(ANSWER) and answer.model_dump()["tokenomy"]["tier"] == "premium"
    assert [(r["tier"], r["outcome"]) for r in _rows(ledger_path)] == [("basic", "ok"), ("premium", "ok")]
    assert _rows(ledger_path)[1]["tags"].get("cascade_escalated")


@pytest.mark.parametrize("store_prompts", [False, True])
def test_a_rejected_answer_says_why_in_its_row_and_route_drift_without_quoting_it_unless_prompts_are_stored(
    upstreams, ledger_path, tmp_path, store_prompts
):
    """Why a cascade escalated reached the ledger only as the next tier's `cascade_escalated` tag: the validator that
    rejected the cheap answer, and what it found, were lost. The rejected attempt's row now names the validator and
    a bounded reason, which quotes the answer (the wrong calculation) only where the ledger stores prompts; `route
    drift` says per route why its answers were rejected."""
    from typer.testing import CliRunner

    from tokenomy.cli import app

    big, small = upstreams("big"), upstreams("small", ("Total: 3 * 4 = 13",))
    data = _config({"big": big.url, "small": small.url}, store_prompts=store_prompts, ledger=str(ledger_path))
    data["routing"]["policies"]["cascade"]["validators"] = {"arithmetic": True}
    cfg = parse_config(data)
    request = ChatRequest.simple("Three boxes of four?", model="extract", meta=RequestMeta(route="extract"))
    with Tokenomy(ledger_path, models=cfg.model_specs(), store_prompts=store_prompts) as client:
        assert client.chat(request, policy=CallPolicy.for_route(cfg, "extract")).tier == "premium"
    rows = _rows(ledger_path)
    said = "wrong arithmetic: 3 * 4 = 13" if store_prompts else "wrong arithmetic"
    assert [(r["tier"], r["outcome"], r["tags"]) for r in rows] == [
        ("basic", "ok", {"cascade_rejected": "arithmetic", "cascade_reason": said}),
        ("premium", "ok", {"cascade_escalated": "1"}),
    ]
    (tmp_path / "tokenomy.yaml").write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["route", "drift", "--config", str(tmp_path / "tokenomy.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    [route] = json.loads(result.output)["escalation"]
    assert (route["route"], route["escalations"]) == ("extract", 1)
    assert route["rejections"] == [{"check": "arithmetic", "reason": said, "answers": 1}]
    table = CliRunner().invoke(
        app, ["route", "drift", "--config", str(tmp_path / "tokenomy.yaml")], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    assert f"{said} (1)" in table.output


@pytest.mark.parametrize("stream", [False, True])
def test_a_cascade_whose_cheap_tier_is_down_escalates_rather_than_fail_the_call(upstreams, ledger_path, stream):
    """A cascade is there to answer with the cheapest tier that answers well; a cheap tier that was down (503 after its
    retries) failed the whole call though a stronger tier was configured. An unavailable, throttled or timed-out tier
    now passes the request up; its failed attempts stay in the ledger, and the answer's row says why it was reached
    (`passed_up_on_error`, not an escalation: no answer was judged, so route drift counts a request, not a rejection).
    """
    from tokenomy.routing.drift import escalation_rates

    big, small = upstreams("big"), upstreams("small", script=[(503, {})] * 2)
    data = _config({"big": big.url, "small": small.url})
    data["routes"]["extract"]["retry"] = {"max_attempts": 2, "base_delay_s": 0.01}
    cfg = parse_config(data)
    request = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
    policy = CallPolicy.for_route(cfg, "extract")
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        chunks = list(client.stream(request, policy=policy)) if stream else None
        answer = chunks[-1].response if chunks else client.chat(request, policy=policy)
    assert answer.tier == "premium" and answer.text == "".join(ANSWER) and answer.attempts == 3
    if chunks:
        assert [c.delta for c in chunks if c.delta] == list(ANSWER)
    assert [(r["tier"], r["attempt"], r["outcome"], r["tags"]) for r in _rows(ledger_path)] == [
        ("basic", 1, "server_error", {}),
        ("basic", 2, "server_error", {}),
        ("premium", 3, "ok", {"passed_up_on_error": "1"}),
    ]
    [rate] = escalation_rates(open_store(ledger_path), cfg)
    assert (rate["calls"], rate["escalations"]) == (1, 0)


def test_a_cascade_does_not_escalate_a_request_the_cheap_tier_refused_as_malformed(upstreams, ledger_path):
    """A 4xx the request itself caused (the stronger tier would refuse it too, and be paid for nothing) ends the call
    as before; so does a cheap tier refusing the gateway's own credentials, a configuration fault to fix, not to hide
    behind the dearest tier's prices."""
    from tokenomy.errors import ProviderError

    big, small = upstreams("big"), upstreams("small", script=[(400, {}), (401, {})])
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    request = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        for status in (400, 401):
            with pytest.raises(ProviderError, match=f"scripted {status}"):
                client.chat(request, policy=CallPolicy.for_route(cfg, "extract"))
    assert big.calls == 0
    assert [(r["tier"], r["outcome"]) for r in _rows(ledger_path)] == [("basic", "client_error")] * 2


@pytest.mark.parametrize("stream", [False, True])
def test_the_gateway_escalates_past_a_cheap_tier_whose_answer_broke_off_and_records_both(
    upstreams, ledger_path, stream
):
    """Through the gateway with a budgeted key: the cheap tier's answer breaks off midway (billed, recorded at its
    estimate, which the key's reservation is extended by before the next attempt), the cascade passes the request
    up, and both attempts are in the ledger under the key."""
    from tokenomy.gateway.keys import KeyStore

    big = upstreams("big")
    small = upstreams("small", script=[(200, {}, "broken" if stream else "cutbody")])
    data = _config({"big": big.url, "small": small.url}, auth=True)
    data["routes"]["extract"]["retry"] = {"max_attempts": 1}
    cfg = parse_config(data)
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="day")
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        reply = client.chat.completions.create(
            model="extract", stream=stream, messages=[{"role": "user", "content": "Name as JSON."}]
        )
        text = (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else (reply.choices[0].message.content)
        )
    assert text == "".join(ANSWER)
    rows = open_store(ledger_path).query(
        "SELECT tier, outcome, cost_usd, key_id FROM usage_events ORDER BY ts, attempt"
    )
    assert [(r["tier"], r["outcome"], r["key_id"]) for r in rows] == [
        ("basic", "server_error", key.key_id),
        ("premium", "ok", key.key_id),
    ]
    assert rows[0]["cost_usd"] > 0  # the broken answer was billed: recorded at its estimate


def test_a_request_the_cheap_tier_never_answered_is_no_training_label(upstreams, ledger_path):
    """`route export-labels` labelled `weak` (the cheap tier was good enough) a request the strong tier answered
    because the cheap one was down or could not take it: no cheap answer was judged, so it says nothing about which
    tier the prompt needs. Such requests are left out and counted."""
    from tokenomy.routing.labels import cascade_export

    big, small = upstreams("big"), upstreams("small", script=[(503, {})])
    data = _blind_cheap_tier({"big": big.url, "small": small.url})
    data["models"]["small"].pop("inputs")
    data["models"]["small2"] = {**data["models"]["small"], "base_url": small.url, "inputs": ["text"]}
    data["tiers"]["basic"] = ["small"]
    data["tiers"]["blind"] = ["small2"]
    data["routes"]["extract"]["retry"] = {"max_attempts": 1}
    data["routes"]["seen"] = {"policy": "seeing"}
    data["routing"]["policies"]["seeing"] = {
        "type": "cascade",
        "tiers": ["blind", "premium"],
        "validators": {"json": True},
    }
    cfg = parse_config(data)
    with Tokenomy(ledger_path, models=cfg.model_specs(), store_prompts=True) as client:
        down = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
        assert client.chat(down, policy=CallPolicy.for_route(cfg, "extract")).tier == "premium"  # 503: passed up
        image = replace(_image_request(), model="seen", meta=RequestMeta(route="seen"))
        assert client.chat(image, policy=CallPolicy.for_route(cfg, "seen")).tier == "premium"  # blind: passed up
        easy = ChatRequest.simple("Name as JSON, again.", model="extract", meta=RequestMeta(route="extract"))
        assert client.chat(easy, policy=CallPolicy.for_route(cfg, "extract")).tier == "basic"
    labels, skipped = cascade_export(open_store(ledger_path), ["extract", "seen"])
    assert [(label["prompt"], label["label"]) for label in labels] == [("[user] Name as JSON, again.", "weak")]
    assert skipped["not_judged"] == 2


def test_a_cascade_stream_its_client_left_while_the_cheap_answer_was_held_is_in_the_ledger(upstreams, ledger_path):
    """A cascade holds the cheap tier's answer until it is judged: a client that leaves meanwhile (nothing has reached
    it yet) leaves the cheap attempt recorded as abandoned at its estimate, and no stronger tier is called for it;
    a strong tier that then breaks mid-stream after a rejected cheap answer leaves both attempts in the ledger."""
    import httpx

    big = upstreams("big", script=[(200, {}, "broken")])
    small = upstreams("small", HEDGE, script=[(200, {}, "stall")])
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    body = {"model": "extract", "stream": True, "messages": [{"role": "user", "content": "Name as JSON."}]}
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        with pytest.raises(httpx.ReadTimeout):  # the cheap tier stalls mid-answer: nothing reaches the client
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=1.0) as reply:
                list(reply.iter_lines())
        # Not released while the gateway runs: the stalled answer never completes, so its row is the abandoned one.
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError, match="overloaded mid-stream"):  # rejected cheap answer, broken strong
            for _ in client.chat.completions.create(model="extract", stream=True, messages=body["messages"]):
                pass
    rows = open_store(ledger_path).query(
        "SELECT tier, attempt, outcome, error_type, cost_usd, request_id FROM usage_events ORDER BY ts, attempt"
    )
    assert [(r["tier"], r["attempt"], r["outcome"], r["error_type"]) for r in rows] == [
        ("basic", 1, "cancelled", "StreamAbandoned"),
        ("basic", 1, "ok", None),
        ("premium", 2, "server_error", "server_error"),
    ]
    assert all(r["cost_usd"] > 0 for r in rows) and rows[1]["request_id"] == rows[2]["request_id"]
    assert big.calls == 1  # only the second request reached the strong tier


def test_a_reason_quoting_an_answer_with_a_nul_character_is_written_to_a_postgresql_ledger(
    upstreams, fresh_postgres_url
):
    """A stored reason may quote the answer (prompts stored): a python check's verdict may repeat it, NUL characters
    and all, which PostgreSQL's text and JSON refuse; the row must still be written, the reason cleaned."""
    big, small = upstreams("big"), upstreams("small", ("Tom\x00", "my"))
    data = _config({"big": big.url, "small": small.url})
    data["routing"]["policies"]["cascade"]["validators"] = {"python": "builtins:str"}  # the answer is the verdict
    cfg = parse_config(data)
    request = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
    with Tokenomy(fresh_postgres_url, models=cfg.model_specs(), store_prompts=True) as client:
        assert client.chat(request, policy=CallPolicy.for_route(cfg, "extract")).tier == "premium"
    rows = _rows(fresh_postgres_url)
    assert [(r["tier"], r["tags"].get("cascade_reason")) for r in rows] == [
        ("basic", "python validator builtins:str: Tom my"),
        ("premium", None),
    ]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("run_async", [False, True])
def test_a_cascade_whose_cheap_tier_failed_past_the_deadline_does_not_call_the_next_tier(
    upstreams, ledger_path, stream, run_async
):
    """The route's deadline bounds the whole call: a cheap tier whose 503 came after it passed ends the call with
    that error, as a retry or a fallback would not be tried then; the strong tier is not called (and paid) late."""
    from tokenomy.errors import ProviderError

    big, small = upstreams("big"), upstreams("small", script=[(503, {}, "late")])
    data = _config({"big": big.url, "small": small.url})
    data["routes"]["extract"]["retry"] = {"max_attempts": 2, "base_delay_s": 0.01, "deadline_s": 1}
    cfg = parse_config(data)
    request = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
    policy = CallPolicy.for_route(cfg, "extract")
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:

        async def call_async():
            if stream:
                return [c async for c in client.astream(request, policy=policy)]
            return await client.achat(request, policy=policy)

        with pytest.raises(ProviderError, match="scripted 503"):
            if run_async:
                asyncio.run(call_async())
            else:
                list(client.stream(request, policy=policy)) if stream else client.chat(request, policy=policy)
    assert big.calls == 0
    assert [(r["tier"], r["outcome"]) for r in _rows(ledger_path)] == [("basic", "server_error")]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("run_async", [False, True])
def test_a_cascade_answer_rejected_past_the_deadline_ends_the_call_without_calling_the_next_tier(
    upstreams, ledger_path, stream, run_async
):
    """The route's deadline bounds the whole call: a cheap tier's answer that came after it passed and failed the
    validators escalated all the same, the strong tier called (and paid) a whole attempt late. The call now ends with
    a timeout naming the deadline and the rejection; the rejected answer stays in the ledger, and is not returned."""
    from tokenomy.errors import ProviderError

    big, small = upstreams("big"), upstreams("small", reply=HEDGE, script=[(200, {}, "late")])
    data = _config({"big": big.url, "small": small.url})
    data["routes"]["extract"]["retry"] = {"max_attempts": 2, "base_delay_s": 0.01, "deadline_s": 1}
    cfg = parse_config(data)
    request = ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"))
    policy = CallPolicy.for_route(cfg, "extract")
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:

        async def call_async():
            if stream:
                return [c async for c in client.astream(request, policy=policy)]
            return await client.achat(request, policy=policy)

        ended_with = r"deadline_s 1 s had passed .* rejected by the cascade's validators \(hedging"
        with pytest.raises(ProviderError, match=ended_with) as ended:
            if run_async:
                asyncio.run(call_async())
            else:
                list(client.stream(request, policy=policy)) if stream else client.chat(request, policy=policy)
    assert ended.value.kind == "timeout" and not ended.value.retryable
    assert ended.value.call_cost_usd > 0  # the rejected answer was paid for
    assert big.calls == 0
    rows = _rows(ledger_path)
    assert [(r["tier"], r["outcome"]) for r in rows] == [("basic", "ok")]
    assert rows[0]["tags"].get("cascade_reason", "").startswith("hedging")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("route", ["extract", "smart"])
def test_a_prompt_too_long_for_a_tiers_context_window_passes_up_to_the_next_tier(upstreams, ledger_path, route, stream):
    """A cheap tier's `context_length_exceeded` (a 400 saying the prompt does not fit the model's window) ended the
    whole call, though the next tier, a larger model, may hold it. It now passes the request up, on a cascade and on
    a rules route alike (the call was not judged: `passed_up_on_error`); the failed attempt stays in the ledger."""
    big = upstreams("big")
    small = upstreams("small", script=[(400, {}, "context_length_exceeded")])
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model=route, stream=stream, messages=[{"role": "user", "content": "Name as JSON."}]
        )
        text = (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else (reply.choices[0].message.content)
        )
    assert text == "".join(ANSWER) and (small.calls, big.calls) == (1, 1)
    assert [(r["route"], r["tier"], r["attempt"], r["outcome"], r["tags"]) for r in _rows(ledger_path)] == [
        (route, "basic", 1, "client_error", {}),
        (route, "premium", 2, "ok", {"passed_up_on_error": "1"}),
    ]


def test_a_prompt_too_long_for_a_model_goes_to_its_fallback_at_once_and_fails_the_call_only_on_the_last(
    upstreams, ledger_path
):
    """Within a tier, a model whose window the prompt exceeds hands the request to the next model of the chain (no
    retry: it would be refused again). When no model of any tier can hold it, the call ends with the last one's error
    and its code, every attempt recorded."""
    from tokenomy.errors import ProviderError

    too_long = (400, {}, "context_length_exceeded")
    small = upstreams("small", script=[too_long])
    small2, big = upstreams("small2"), upstreams("big", script=[too_long])
    data = _config({"big": big.url, "small": small.url, "small2": small2.url})
    data["tiers"]["basic"] = ["small", "small2"]
    data["routes"]["smart"]["retry"] = {"max_attempts": 3, "base_delay_s": 0.01}
    cfg = parse_config(data)
    policy = CallPolicy.for_route(cfg, "smart")
    request = ChatRequest.simple("hello", model="smart", meta=RequestMeta(route="smart"))
    with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
        answer = client.chat(request, policy=policy)
        small.script.append(too_long)
        small2.script.append(too_long)
        with pytest.raises(ProviderError) as failed:
            client.chat(request, policy=policy)
    assert answer.model == "small2" and answer.tier == "basic" and answer.attempts == 2
    assert failed.value.kind == "client_error" and failed.value.code == "context_length_exceeded"
    rows = _rows(ledger_path)
    assert [(r["tier"], r["model"], r["attempt"], r["outcome"]) for r in rows] == [
        ("basic", "small", 1, "client_error"),
        ("basic", "small2", 2, "ok"),
        ("basic", "small", 1, "client_error"),
        ("basic", "small2", 2, "client_error"),
        ("premium", "big", 3, "client_error"),
    ]


@pytest.mark.parametrize("provider", ["anthropic", "bedrock", "gemini"])
def test_each_apis_prompt_too_long_error_passes_a_cascade_up(upstreams, ledger_path, provider, monkeypatch):
    """Each API says "too long" its own way: Anthropic's invalid_request_error "prompt is too long", Bedrock's
    ValidationException "Input is too long for requested model", Gemini's INVALID_ARGUMENT "The input token count
    exceeds the maximum number of tokens allowed". The emulators answer so for a prompt over their window; each is
    read as the model's context window exceeded, and the cascade's next tier answers."""
    from tokenomy.emulate.anthropic_api import create_app as anthropic_app
    from tokenomy.emulate.bedrock_runtime import create_app as bedrock_app
    from tokenomy.emulate.gemini_api import create_app as gemini_app
    from tokenomy.emulate.instant_engine import InstantEngine

    monkeypatch.setenv("CHEAP_KEY", "unused")
    engine = InstantEngine(context_tokens=50)
    app, entry = {
        "anthropic": (
            anthropic_app,
            {"provider": "anthropic", "model": "claude-3-5-haiku-20241022", "api_key_env": "CHEAP_KEY"},
        ),
        "bedrock": (bedrock_app, {"provider": "bedrock", "model": "amazon.nova-micro-v1:0", "region": "us-east-1"}),
        "gemini": (gemini_app, {"provider": "gemini", "model": "gemini-2.0-flash-lite", "api_key_env": "CHEAP_KEY"}),
    }[provider]
    big = upstreams("big")
    with ServerThread(app(engine=engine)) as url:
        data = _config({"big": big.url})
        data["models"]["small"] = {**entry, ("endpoint_url" if provider == "bedrock" else "base_url"): url}
        cfg = parse_config(data)
        policy = CallPolicy.for_route(cfg, "extract")
        with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
            fits = client.chat(
                ChatRequest.simple("Name as JSON.", model="extract", meta=RequestMeta(route="extract"), max_tokens=5),
                policy=policy,
            )
            long = client.chat(
                ChatRequest.simple(
                    "Name as JSON. " + "word " * 400, model="extract", meta=RequestMeta(route="extract")
                ),
                policy=policy,
            )
    assert long.tier == "premium" and long.text == "".join(ANSWER)
    assert fits.tier == "premium"  # the emulator's echo is no JSON: escalated by the validators, as ever
    rows = _rows(ledger_path)
    assert [(r["tier"], r["outcome"], r["tags"]) for r in rows[2:]] == [
        ("basic", "client_error", {}),
        ("premium", "ok", {"passed_up_on_error": "1"}),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_cascade_escalates_fenced_json_to_a_caller_whose_response_format_asks_for_json(
    upstreams, ledger_path, stream
):
    """The cheap tier's "```json ... ```" answer passed the JSON check and reached a caller that asked for
    `response_format: json_object`, whose json.loads then failed on it. It is judged malformed: the cascade
    escalates, and the caller gets the strong tier's bare JSON."""
    big = upstreams("big")
    small = upstreams("small", ("```json\n", '{"name": "Tom"}', "\n```"))
    cfg = parse_config(_config({"big": big.url, "small": small.url}))
    with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="extract",
            stream=stream,
            response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Name as JSON."}],
        )
        text = (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else (reply.choices[0].message.content)
        )
    assert json.loads(text) == {"name": "Tom"}
    rows = _rows(ledger_path)
    assert [(r["tier"], r["outcome"], r["tags"].get("cascade_rejected")) for r in rows] == [
        ("basic", "ok", "json"),
        ("premium", "ok", None),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_cascade_accepts_a_tool_call_beside_a_hedging_preamble_and_escalates_a_malformed_one(ledger_path, stream):
    """A tool call is the model acting: an answer calling the weather tool after "I'm not sure, let me check the weather
    tool" was escalated as a hedge, and every agent turn that said so went to the dearest tier. The hedge check now
    judges only answers without tool calls; a call whose arguments the tool's schema rejects is still escalated
    (as `tool_call`, whatever the text beside it)."""
    from helpers.recording_openai import stream_chunks

    preamble = "I'm not sure, let me check the weather tool."
    with RecordingOpenAI() as small, RecordingOpenAI() as big:
        small.message_extra = {"content": preamble}
        if stream:  # the preamble streams before the call, as OpenAI sends it
            body = {
                "model": "small",
                "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                "stream_options": {"include_usage": True},
            }
            chunks = stream_chunks(body)
            chunks.insert(
                1, {**chunks[0], "choices": [{"index": 0, "delta": {"content": preamble}, "finish_reason": None}]}
            )
            small.chunks = chunks
        cfg = _agent_cascade(small, big)
        city = {"type": "object", "properties": {"city": {"type": "string"}, "tool": {"type": "string"}}}
        strict = {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}
        with ServerThread(create_app(cfg, str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for schema in (city, strict):  # the upstream sends {"city", "tool"}: the strict schema refuses it
                tool = {"type": "function", "function": {"name": "get_weather", "parameters": schema}}
                reply = client.chat.completions.create(
                    model="agent",
                    stream=stream,
                    tools=[tool],
                    max_tokens=50,
                    messages=[{"role": "user", "content": "Weather in Paris?"}],
                )
                if stream:
                    parts = [t for c in reply if c.choices for t in c.choices[0].delta.tool_calls or []]
                else:
                    parts = reply.choices[0].message.tool_calls
                calls = [t.function.name for t in parts if t.function.name]
                assert calls == ["get_weather"]
        assert (len(small.bodies), len(big.bodies)) == (2, 1)
    rows = _rows(ledger_path)
    assert [(r["tier"], r["tags"].get("cascade_rejected"), r["tags"].get("cascade_escalated")) for r in rows] == [
        ("basic", None, None),
        ("basic", "tool_call", None),
        ("premium", None, "1"),
    ]
