"""Gemini's explicit context caching through the gateway: google-genai's `client.caches` (create, get, list, update,
delete) against `tokenomy serve`, and generate_content with `cached_content` on a Claude route (the cache's prefix
reaches Claude with a cache point after it, and the ledger prices the cache tokens Claude reports) and on a Gemini
route; Gemini's errors for a cache beside a system instruction, an unknown or expired cache and another model's;
two gateways on one ledger (two workers) share caches, and a team's caches are its own. On Bedrock (the emulator's
prompt cache) the cached prefix is written once and read after."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from helpers import requests_in_metrics
from helpers.converse_capture import record_converse
from helpers.ledger_rows import written_rows
from helpers.scripted_anthropic import USAGE, ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.prompt_cache import PromptCache
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
GEMINI = "gemini-2.5-flash"
BOOK = "A long manual about the gateway. " * 50
RULES = "Answer from the manual only."


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


def config(claude: str, gemini: str, auth: bool = False):
    return parse_config(
        {
            "auth": auth,
            "models": {
                "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                "g": {"provider": "gemini", "model": GEMINI, "base_url": gemini},
            },
        }
    )


@pytest.fixture
def served(tmp_path):
    """(google-genai client, scripted Claude upstream, ledger path, config, the gateway's URL)."""
    scripted = ScriptedAnthropic()
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(scripted.app) as claude, ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        loaded = config(claude, gemini)
        with ServerThread(create_app(loaded, ledger), lifespan="on") as url:
            yield genai.Client(api_key="unused", http_options={"base_url": url}), scripted, ledger, loaded, url


def make_cache(client, model: str = "claude", ttl: str = "300s", name: str | None = "manual"):
    return client.caches.create(
        model=model,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=BOOK)])],
            system_instruction=RULES,
            ttl=ttl,
            display_name=name,
        ),
    )


def test_caches_are_created_read_listed_updated_and_deleted_as_geminis(served) -> None:
    client = served[0]
    before = time.time()
    cache = make_cache(client)
    assert cache.name.startswith("cachedContents/") and cache.model == "models/claude"
    assert cache.display_name == "manual" and cache.usage_metadata.total_token_count > 300
    assert 290 < cache.expire_time.timestamp() - before < 310 and cache.create_time == cache.update_time
    got = client.caches.get(name=cache.name)
    assert (got.name, got.expire_time, got.usage_metadata.total_token_count) == (
        cache.name,
        cache.expire_time,
        cache.usage_metadata.total_token_count,
    )
    other = make_cache(client, name=None)
    pager = client.caches.list(config=types.ListCachedContentsConfig(page_size=1))
    assert [c.name for c in pager] == [cache.name, other.name]  # two pages of one, oldest first
    longer = client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert 7190 < longer.expire_time.timestamp() - time.time() < 7210 and longer.update_time > cache.update_time
    client.caches.delete(name=cache.name)
    with pytest.raises(errors.APIError) as gone:
        client.caches.get(name=cache.name)
    assert gone.value.code == 404 and cache.name in gone.value.message
    assert [c.name for c in client.caches.list()] == [other.name]


def masked(url: str, mask: str) -> genai.Client:
    """A google-genai client whose every call carries `updateMask` (the SDK sends none of its own; other clients, and
    the REST reference, do)."""
    sender = httpx.Client(params={"updateMask": mask})
    return genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=url, httpx_client=sender))


def test_an_update_reads_only_the_fields_its_update_mask_names(served) -> None:
    # The gateway checked the mask's names but still applied a body field the mask left out: under mask
    # "expire_time" a body's ttl moved the cache's expiry. Gemini updates only the fields the mask names.
    client, url = served[0], served[4]
    cache = make_cache(client)
    with pytest.raises(errors.ClientError, match="updateMask names expire_time, which the body does not set") as left:
        masked(url, "expire_time").caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert left.value.code == 400
    assert client.caches.get(name=cache.name).expire_time == cache.expire_time  # the ttl left out was not applied
    with pytest.raises(errors.ClientError, match="updateMask: display_name cannot be updated") as refused:
        masked(url, "display_name").caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s"))
    assert refused.value.code == 400
    later = types.UpdateCachedContentConfig(expire_time="2099-01-01T00:00:00Z")
    assert masked(url, "expireTime").caches.update(name=cache.name, config=later).expire_time.year == 2099
    # A field outside the mask is left as it is, not refused: ttl is updated, displayName not read.
    renamed = httpx.patch(
        f"{url}/v1beta/{cache.name}?updateMask=ttl",
        json={"ttl": "600s", "displayName": "other"},
        headers={"x-goog-api-key": "unused"},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["displayName"] == "manual" and not renamed.json()["expireTime"].startswith("2099")


def test_a_cache_reaches_claude_as_a_prefix_with_a_cache_point_and_the_ledger_prices_its_tokens(served) -> None:
    client, scripted, ledger, _, _ = served
    cache = make_cache(client)
    asked = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20)
    scripted.usage = {**USAGE, "cache_creation_input_tokens": 700}
    answer = client.models.generate_content(model="claude", contents="What does the gateway do?", config=asked)
    sent = scripted.requests[-1][1]
    assert sent["system"] == RULES  # cached before the cache point on the cached turns (tools, system, messages)
    first, question = sent["messages"][0]["content"], sent["messages"][-1]["content"]
    assert first[0]["text"] == BOOK and first[-1]["cache_control"] == {"type": "ephemeral"}  # after the cached turns
    assert question == "What does the gateway do?"  # the request's own turn, after the cache point
    assert answer.text == "Hi"
    scripted.usage = {**USAGE, "cache_read_input_tokens": 700}
    chunks = list(client.models.generate_content_stream(model="claude", contents="And then?", config=asked))
    assert chunks[-1].usage_metadata.cached_content_token_count == 700
    assert scripted.requests[-1][1]["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    entry = default_catalog().lookup(SONNET)
    write, read = written_rows(ledger, 2)
    assert (write.cache_write_tokens, write.cache_read_tokens) == (700, 0)
    assert write.cache_write_cost_usd == 700 * entry.cache_write / 10**6
    assert (read.cache_write_tokens, read.cache_read_tokens) == (0, 700)
    assert read.cache_read_cost_usd == 700 * entry.cache_read / 10**6 and read.cost_usd > Decimal(0)


def test_a_cache_of_a_chat_with_a_streamed_answer_keeps_its_point_after_the_answer(served) -> None:
    """A chat's history holds a streamed answer as a model content per chunk, which are one assistant turn: the cache
    point stays on that turn, the cache's last, not on the request's question after it."""
    client, scripted, _, _, _ = served
    history = [
        types.Content(role="user", parts=[types.Part(text=BOOK)]),
        *(types.Content(role="model", parts=[types.Part(text=piece)]) for piece in ("I have", " read it.")),
    ]
    cache = client.caches.create(model="claude", config=types.CreateCachedContentConfig(contents=history, ttl="300s"))
    asked = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20)
    client.models.generate_content(model="claude", contents="What does it say?", config=asked)
    sent = scripted.requests[-1][1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [{"type": "text", "text": "I have read it.", "cache_control": {"type": "ephemeral"}}]
    assert sent[2]["content"] == "What does it say?"


def test_a_cache_made_to_last_an_hour_gets_a_one_hour_cache_point_where_the_model_takes_one(served) -> None:
    """A 5-minute point under a cache that lives an hour is written again every time the prefix goes 5 minutes unused;
    Claude Sonnet 4.5 takes 1-hour points (and the catalog prices their writes), so a cache of an hour gets one."""
    client, scripted, ledger, _, _ = served
    hour = make_cache(client, ttl="3600s")
    asked = types.GenerateContentConfig(cached_content=hour.name, max_output_tokens=20)
    scripted.usage = {
        **USAGE,
        "cache_creation_input_tokens": 700,
        "cache_creation": {"ephemeral_1h_input_tokens": 700, "ephemeral_5m_input_tokens": 0},
    }
    client.models.generate_content(model="claude", contents="What does the gateway do?", config=asked)
    point = scripted.requests[-1][1]["messages"][0]["content"][-1]["cache_control"]
    assert point == {"type": "ephemeral", "ttl": "1h"}
    (write,) = written_rows(ledger, 1)
    assert write.cache_write_cost_usd == 700 * default_catalog().lookup(SONNET).cache_write_1h / 10**6
    short = make_cache(client, ttl="600s")  # under an hour: the 5-minute default, as before
    client.models.generate_content(
        model="claude",
        contents="Again?",
        config=types.GenerateContentConfig(cached_content=short.name, max_output_tokens=20),
    )
    assert scripted.requests[-1][1]["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}


def test_a_cache_of_an_hour_on_a_model_without_one_hour_points_keeps_the_five_minute_one(tmp_path, monkeypatch) -> None:
    """Claude 3.7 Sonnet on Bedrock has no 1-hour cache (nor a 1-hour write price): the gateway's own point stays a
    5-minute one rather than the request being refused for a point the caller never asked for."""

    sent = record_converse(monkeypatch)
    with ServerThread(create_bedrock(engine=InstantEngine(cache=PromptCache()))) as bedrock:
        loaded = parse_config(
            {
                "models": {
                    "old": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-3-7-sonnet-20250219-v1:0",
                    }
                }
            }
        )
        with ServerThread(create_app(loaded, str(tmp_path / "l.duckdb")), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            cache = make_cache(client, model="old", ttl="7200s")
            answer = client.models.generate_content(
                model="old",
                contents="Hi",
                config=types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20),
            )
    assert answer.text
    # (the cached turn and the request's own are one Converse message: Converse's roles alternate)
    assert sent[-1]["messages"][0]["content"][1] == {"cachePoint": {"type": "default"}}


def test_caches_on_vertex_ai_paths_are_the_same_caches_named_as_vertex_names_them(served, monkeypatch) -> None:
    """google-genai on Vertex AI (`vertexai=True`) keeps caches under `projects/{p}/locations/{l}/cachedContents`:
    those paths were a 404. They are the gateway's caches, named back in Vertex's form, and a request naming one by
    its full name gets its prefix as on the Gemini API; express mode (no project) too."""
    from google.oauth2.credentials import Credentials

    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    _, scripted, _, _, _ = served
    url = served[0]._api_client._http_options.base_url
    vertex = genai.Client(
        vertexai=True,
        project="acme",
        location="us-central1",
        credentials=Credentials(token="t"),
        http_options={"base_url": url},
    )
    cache = make_cache(vertex, ttl="600s")
    parent = "projects/acme/locations/us-central1"
    assert cache.name.startswith(f"{parent}/cachedContents/")
    assert cache.model == f"{parent}/publishers/google/models/claude"
    assert vertex.caches.get(name=cache.name).expire_time == cache.expire_time
    assert [c.name for c in vertex.caches.list()] == [cache.name]
    assert served[0].caches.get(name=cache.name.removeprefix(parent + "/")).name.startswith("cachedContents/")
    vertex.models.generate_content(
        model="claude",
        contents="What does it do?",
        config=types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20),
    )
    first = scripted.requests[-1][1]["messages"][0]["content"]
    assert first[0]["text"] == BOOK and first[-1]["cache_control"] == {"type": "ephemeral"}
    longer = vertex.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert longer.expire_time > cache.expire_time
    vertex.caches.delete(name=cache.name)
    with pytest.raises(errors.APIError) as gone:
        vertex.caches.get(name=cache.name)
    assert gone.value.code == 404 and cache.name in gone.value.message
    with pytest.raises(errors.APIError) as used:  # on a Claude route: the 404 of a cache that is not there
        vertex.models.generate_content(
            model="claude",
            contents="Still?",
            config=types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20),
        )
    assert used.value.code == 404 and cache.name in used.value.message
    express = genai.Client(vertexai=True, api_key="unused", http_options={"base_url": url})
    quick = make_cache(express, ttl="600s")
    express.models.generate_content(
        model="claude",
        contents="And?",
        config=types.GenerateContentConfig(cached_content=quick.name, max_output_tokens=20),
    )
    assert scripted.requests[-1][1]["messages"][0]["content"][0]["text"] == BOOK


def test_a_cache_on_a_gemini_route_is_sent_whole(served) -> None:
    client = served[0]
    cache = make_cache(client, model="g")
    answer = client.models.generate_content(
        model="g",
        contents="Summarise.",
        config=types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20),
    )
    assert answer.text and answer.usage_metadata.prompt_token_count > 300  # the manual was sent with the question


def test_geminis_errors_for_a_cache_beside_a_system_instruction_an_unknown_one_an_expired_one_and_another_models(
    served,
) -> None:
    client = served[0]
    cache = make_cache(client)
    with pytest.raises(errors.APIError) as beside:
        client.models.generate_content(
            model="claude",
            contents="Hi",
            config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="Be brief."),
        )
    assert beside.value.code == 400 and "systemInstruction" in beside.value.message
    with pytest.raises(errors.APIError) as unknown:
        client.models.generate_content(
            model="claude", contents="Hi", config=types.GenerateContentConfig(cached_content="cachedContents/nope")
        )
    assert unknown.value.code == 404 and "cachedContents/nope" in unknown.value.message
    with pytest.raises(errors.APIError) as other:
        client.models.generate_content(
            model="g", contents="Hi", config=types.GenerateContentConfig(cached_content=cache.name)
        )
    assert other.value.code == 400 and "models/claude" in other.value.message
    short = make_cache(client, ttl="1s")
    time.sleep(1.2)
    with pytest.raises(errors.APIError) as expired:
        client.models.generate_content(
            model="claude", contents="Hi", config=types.GenerateContentConfig(cached_content=short.name)
        )
    assert expired.value.code == 404 and short.name in expired.value.message
    assert short.name not in [c.name for c in client.caches.list()]
    with pytest.raises(errors.APIError) as bad_ttl:
        make_cache(client, ttl="soon")
    assert bad_ttl.value.code == 400 and "ttl" in bad_ttl.value.message


def test_a_request_naming_a_cache_with_contents_not_a_list_is_a_400_naming_contents(served) -> None:
    # `contents` was spliced after the cache's own turns as a list: 5 raised a TypeError (a 500), a string or an
    # object was spliced letter by letter or key by key. Each is Gemini's 400 naming contents and the fix.
    client, url = served[0], served[4]
    cache = make_cache(client)
    for method in ("generateContent", "countTokens"):
        for contents in (5, "Hi", {"role": "user", "parts": [{"text": "Hi"}]}):
            sent = httpx.post(
                f"{url}/v1beta/models/claude:{method}", json={"cachedContent": cache.name, "contents": contents}
            )
            assert sent.status_code == 400, (method, contents, sent.text)
            error = sent.json()["error"]
            assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("contents: expected a list")


def test_each_answer_of_the_cache_endpoints_is_counted_in_metrics_under_its_caches_route(served) -> None:
    # The cachedContents endpoints counted none of their own answers (only the edge's and the app's handlers' were):
    # /metrics showed no trace of them. Each is counted now: under the route a cache is for, as that route's calls
    # are; under "unknown" where no cache or route was read (a listing, a 404, a body refused before its model).
    client, url = served[0], served[4]
    before = requests_in_metrics(url)
    cache = make_cache(client)
    client.caches.get(name=cache.name)
    assert [c.name for c in client.caches.list()] == [cache.name]
    client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s"))
    client.caches.delete(name=cache.name)
    with pytest.raises(errors.APIError) as gone:
        client.caches.get(name=cache.name)
    with pytest.raises(errors.APIError) as unserved:
        make_cache(client, model="nope")
    with pytest.raises(errors.APIError) as bad_ttl:
        make_cache(client, ttl="soon")
    bad_page = httpx.get(f"{url}/v1beta/cachedContents", params={"pageSize": "many"})
    assert (gone.value.code, unserved.value.code, bad_ttl.value.code, bad_page.status_code) == (404, 404, 400, 400)
    after = requests_in_metrics(url)
    added = {series: after[series] - before.get(series, 0.0) for series in after if after[series] != before.get(series)}
    assert added == {
        ("claude", "200"): 4,  # create, get, update, delete
        ("unknown", "200"): 1,  # the listing: a page holds caches of any route
        ("unknown", "404"): 2,  # no such cache; no such route
        ("claude", "400"): 1,  # a bad ttl for a cache of route "claude"
        ("unknown", "400"): 1,  # a bad pageSize
    }


def test_two_gateways_on_one_ledger_share_caches_and_a_team_sees_only_its_own(tmp_path) -> None:
    scripted = ScriptedAnthropic()
    ledger = str(tmp_path / "ledger.duckdb")
    keys = KeyStore(open_store(ledger))
    ours, _ = keys.create(team="research")
    theirs, _ = keys.create(team="sales")
    with ServerThread(scripted.app) as claude, ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        loaded = config(claude, gemini, auth=True)
        with (
            ServerThread(create_app(loaded, ledger), lifespan="on") as one,
            ServerThread(create_app(loaded, ledger), lifespan="on") as two,
        ):
            first = genai.Client(api_key=ours, http_options={"base_url": one})
            second = genai.Client(api_key=ours, http_options={"base_url": two})
            cache = make_cache(first)
            assert second.caches.get(name=cache.name).name == cache.name
            second.models.generate_content(
                model="claude", contents="Hi", config=types.GenerateContentConfig(cached_content=cache.name)
            )
            assert scripted.requests[-1][1]["messages"][0]["content"][0]["text"] == BOOK
            stranger = genai.Client(api_key=theirs, http_options={"base_url": two})
            assert list(stranger.caches.list()) == []
            with pytest.raises(errors.APIError) as hidden:
                stranger.caches.get(name=cache.name)
            assert hidden.value.code == 404


def test_a_cache_on_a_clickhouse_ledger_is_geminis_501_naming_the_ledger_and_counted_in_metrics(tmp_path) -> None:
    # A ClickHouse ledger keeps the calls only: creating a cache is answered 501 by the app's NotOnThisLedger handler,
    # which was the one exception handler whose answer /metrics did not count, as if the request never came. And it
    # was in OpenAI's shape, as google-genai 3's /v1/cachedContents was taken for OpenAI's: the SDK read no message.
    pytest.importorskip("chdb")
    ledger = f"chdb:{tmp_path / 'ledger.chdb'}"
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        loaded = parse_config({"models": {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}})
        with ServerThread(create_app(loaded, ledger), lifespan="on") as url:
            before = unrouted_501s(url)
            with pytest.raises(errors.APIError) as refused:
                make_cache(genai.Client(api_key="unused", http_options={"base_url": url}), model="g")
            after = unrouted_501s(url)
    assert refused.value.code == 501 and refused.value.status == "UNIMPLEMENTED"
    assert refused.value.message.startswith(f"ledger {ledger}: the gateway's Gemini cachedContents need a DuckDB")
    assert after == before + 1  # under "unknown": no route admitted it


def test_a_cached_content_on_a_clickhouse_ledger_is_the_same_501_when_a_request_names_one(tmp_path) -> None:
    # Creating a cache on a ClickHouse ledger is the app's 501 (the operator's choice of ledger); generateContent and
    # countTokens naming a cache answered 400 INVALID_ARGUMENT instead, as if the caller's request were wrong: their
    # own `except TokenomyError` caught NotOnThisLedger. Now the same 501, counted, and nothing is sent or recorded.
    pytest.importorskip("chdb")
    ledger = f"chdb:{tmp_path / 'ledger.chdb'}"
    with ServerThread(create_gemini(engine=InstantEngine())) as gemini:
        loaded = parse_config({"models": {"g": {"provider": "gemini", "model": GEMINI, "base_url": gemini}}})
        with ServerThread(create_app(loaded, ledger), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            assert client.models.generate_content(model="g", contents="Hi").text  # a call: one row in this ledger
            before = unrouted_501s(url)
            asked = types.GenerateContentConfig(cached_content="cachedContents/abc", max_output_tokens=20)
            with pytest.raises(errors.APIError) as whole:
                client.models.generate_content(model="g", contents="Hi", config=asked)
            with pytest.raises(errors.APIError) as streamed:
                list(client.models.generate_content_stream(model="g", contents="Hi", config=asked))
            # google-genai's count_tokens sends no cachedContent; the REST API's generateContentRequest does
            counted = httpx.post(
                f"{url}/v1beta/models/g:countTokens",
                json={
                    "generateContentRequest": {
                        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                        "cachedContent": "cachedContents/abc",
                    }
                },
            )
            with pytest.raises(errors.APIError) as listed:  # a GET: its 501 was the one such answer left uncounted
                list(client.caches.list())
            after = unrouted_501s(url)
        rows = open_store(ledger).events()
    refusals = [(e.value.code, e.value.status, e.value.message) for e in (whole, streamed, listed)]
    refusals.append((counted.status_code, counted.json()["error"]["status"], counted.json()["error"]["message"]))
    for code, status, message in refusals:
        assert (code, status) == (501, "UNIMPLEMENTED")
        assert message.startswith(f"ledger {ledger}: the gateway's Gemini cachedContents need a DuckDB"), message
    assert after == before + 4  # under "unknown", as the create's: refused before any route admitted them
    assert len(rows) == 1  # the plain call's: the refused ones were never admitted, sent nor recorded


def unrouted_501s(url: str) -> float:
    """The count /metrics has of 501s under model "unknown" (the counters live as long as the process)."""
    exposed = httpx.get(url + "/metrics").text
    found = re.search(r'^tokenomy_requests_total{model="unknown",status="501"} ([\d.]+)$', exposed, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_cache_on_a_bedrock_route_is_written_once_and_read_after_as_bedrock_reports_it(tmp_path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    with ServerThread(create_bedrock(engine=InstantEngine(cache=PromptCache()))) as bedrock:
        loaded = parse_config(
            {
                "models": {
                    "sonnet": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": BEDROCK_SONNET,
                    }
                }
            }
        )
        with ServerThread(create_app(loaded, ledger), lifespan="on") as url:
            client = genai.Client(api_key="unused", http_options={"base_url": url})
            cache = client.caches.create(
                model="sonnet",
                config=types.CreateCachedContentConfig(
                    contents=[types.Content(role="user", parts=[types.Part(text=BOOK * 8)])], system_instruction=RULES
                ),
            )
            asked = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=20)
            first = client.models.generate_content(model="sonnet", contents="What is it?", config=asked)
            again = client.models.generate_content(model="sonnet", contents="And then?", config=asked)
    assert not first.usage_metadata.cached_content_token_count  # Bedrock wrote the prefix (over its 1,024 minimum)
    assert again.usage_metadata.cached_content_token_count > 1024  # and read it back
    write, read = written_rows(ledger, 2)
    entry = default_catalog().lookup(BEDROCK_SONNET, "us-east-1")
    assert write.cache_write_tokens > 1024 and write.cache_read_tokens == 0
    assert read.cache_read_tokens == write.cache_write_tokens and read.cache_write_tokens == 0
    assert read.cache_read_cost_usd == read.cache_read_tokens * entry.cache_read / 10**6
    # Gemini's default ttl is an hour, and Claude Sonnet 4.5 on Bedrock caches for one: written at the 1-hour price
    assert write.cache_write_cost_usd == write.cache_write_tokens * entry.cache_write_1h / 10**6
