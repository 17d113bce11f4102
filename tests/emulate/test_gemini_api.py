"""The official `google-genai` SDK against `tokenomy emulate gemini --instant` run as a real process:
chat, SSE stream, a tool-call round trip, an image part, an explicit cache hit at the cached rate, and a
batch job answered and priced at batch rates (prices checked against the catalog, computed here)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from helpers import free_port, wait_for_port
from tokenomy.caching.placement import IMAGE_TOKENS
from tokenomy.chat_response import Usage
from tokenomy.emulate import gemini_api, gemini_response
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import cache_storage_cost, compute_cost
from tokenomy.providers.gemini_parts_read import usage_from_gemini

MODEL = "gemini-2.5-flash"
MILLION = Decimal(1_000_000)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40
CONTRACT = "\n".join(f"Clause {i}: deliveries of lot {i} are paid within {i % 7 + 2} weeks." for i in range(120))


@pytest.fixture(scope="module")
def url():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "emulate",
            "gemini",
            "--instant",
            "--port",
            str(port),
            "--batch-pending-seconds",
            "0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, 60, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture()
def client(url) -> genai.Client:
    return genai.Client(api_key="x", http_options={"base_url": url})


def weather_tool() -> types.Tool:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    return types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather", description="Weather now in a city", parameters_json_schema=schema
            )
        ]
    )


def test_chat_answers_with_usage(client) -> None:
    response = client.models.generate_content(model=MODEL, contents="Name three rivers of Europe")
    usage = response.usage_metadata
    assert response.text == "Re: Name three rivers of Europe"  # the instant engine echoes the prompt
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert usage.candidates_token_count == 6 and usage.prompt_token_count > 5
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert not usage.cached_content_token_count and response.model_version == MODEL


def test_stream_sends_the_same_answer_in_sse_chunks(client) -> None:
    prompt = "Describe the sea in a few calm words"
    whole = client.models.generate_content(model=MODEL, contents=prompt)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=prompt))
    assert "".join(c.text or "" for c in chunks) == whole.text
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count == whole.usage_metadata.candidates_token_count
    assert last.usage_metadata.prompt_token_count == whole.usage_metadata.prompt_token_count


def test_a_streams_last_chunk_carries_the_last_text_with_its_finish_reason(client) -> None:
    # The last chunk had `parts: []` beside finishReason and usage, where Gemini's has the answer's last text:
    # google-genai's chats drop a streamed turn whose chunk has no part, so the next message went without it.
    chat = client.chats.create(model=MODEL)
    chunks = list(chat.send_message_stream("My name is Bob"))
    last = chunks[-1].candidates[0]
    assert last.finish_reason == types.FinishReason.STOP and last.content.parts and chunks[-1].text
    assert "".join(c.text or "" for c in chunks) == "Re: My name is Bob"
    chat.send_message("What is my name?")
    history = chat.get_history(curated=True)
    assert [(c.role, c.parts[0].text) for c in history[:2]] == [
        ("user", "My name is Bob"),
        ("model", "Re: My name is Bob"),
    ]
    # Each piece goes out as the next comes: the thought in a chunk of its own, the answer's text in the last.
    thinking = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=64, include_thoughts=True)
    )
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi", config=thinking))
    assert [[(p.thought, p.text) for p in c.candidates[0].content.parts] for c in chunks] == [
        [(True, "Re: hi")],
        [(None, "Re: hi")],
    ]
    assert [c.candidates[0].finish_reason for c in chunks] == [None, types.FinishReason.STOP]


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")  # inside the SDK
def test_async_client_chats_and_streams(client) -> None:
    import asyncio

    async def run() -> tuple[str, str]:
        whole = await client.aio.models.generate_content(model=MODEL, contents="Count to three")
        pieces = [
            c.text or ""
            async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="Count to three")
        ]
        return whole.text, "".join(pieces)

    whole, streamed = asyncio.run(run())
    assert whole == streamed == "Re: Count to three"


def test_tool_call_round_trip(client) -> None:
    config = types.GenerateContentConfig(
        tools=[weather_tool()],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
    )
    question = types.Content(role="user", parts=[types.Part(text="What is the weather in Oslo?")])
    first = client.models.generate_content(model=MODEL, contents=[question], config=config)
    call = first.function_calls[0]
    assert call.name == "get_weather" and isinstance(call.args["city"], str)  # follows the schema
    answer = types.Part.from_function_response(name="get_weather", response={"output": "sunny, 18 C"})
    second = client.models.generate_content(
        model=MODEL,
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=[answer])],
        config=types.GenerateContentConfig(tools=[weather_tool()]),
    )
    assert not second.function_calls
    assert "function_response" in second.text and "sunny," in second.text  # the result reached the model


def test_image_part_counts_as_image_input(client) -> None:
    text_only = client.models.generate_content(model=MODEL, contents="What is in this picture?")
    with_image = client.models.generate_content(
        model=MODEL, contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "What is in this picture?"]
    )
    added = with_image.usage_metadata.prompt_token_count - text_only.usage_metadata.prompt_token_count
    assert IMAGE_TOKENS <= added < IMAGE_TOKENS + 20  # the image estimate plus its placeholder line


def test_an_image_a_function_returned_is_read_and_counted(client, url) -> None:
    # functionResponse.parts (Gemini 3's multimodal function responses, what Gemini CLI's read_file sends) were
    # ignored: the model never saw the image and the prompt was billed without it.
    call = types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(name="shot", args={}))])
    image = types.FunctionResponsePart(inline_data=types.FunctionResponseBlob(mime_type="image/png", data=PNG))
    turns = {}
    for name, parts in (("plain", None), ("image", [image])):
        result = types.FunctionResponse(name="shot", response={"output": "done"}, parts=parts)
        turns[name] = [
            types.Content(role="user", parts=[types.Part(text="Screenshot?")]),
            call,
            types.Content(role="user", parts=[types.Part(function_response=result)]),
        ]
    config = types.GenerateContentConfig(
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(name="shot", parameters_json_schema={"type": "object", "properties": {}})
                ]
            )
        ]
    )
    plain, seen = (client.models.generate_content(model=MODEL, contents=turns[k], config=config) for k in turns)
    added = seen.usage_metadata.prompt_token_count - plain.usage_metadata.prompt_token_count
    assert IMAGE_TOKENS <= added < IMAGE_TOKENS + 20 and "[image/png, " in seen.text
    counted = {k: client.models.count_tokens(model=MODEL, contents=turns[k]).total_tokens for k in turns}
    assert counted["image"] - counted["plain"] == added  # countTokens counts it as generateContent bills it
    bad = {
        "contents": [
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "shot", "response": {}, "parts": [{"text": "no"}]}}],
            }
        ]
    }
    refused = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent", json=bad, headers={"x-goog-api-key": "x"})
    assert refused.status_code == 400 and "contents[0].parts[0].functionResponse.parts[0]" in refused.text


def test_explicit_cache_hit_is_priced_at_the_cached_rate(client) -> None:
    cache = client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[CONTRACT], system_instruction="Answer from the contract.", ttl="600s", display_name="contract"
        ),
    )
    cached = cache.usage_metadata.total_token_count
    assert cache.name.startswith("cachedContents/") and cached >= 1024 and cache.display_name == "contract"
    assert client.caches.get(name=cache.name).expire_time == cache.expire_time
    assert cache.name in [c.name for c in client.caches.list()]

    response = client.models.generate_content(
        model=MODEL, contents="When is lot 7 paid?", config=types.GenerateContentConfig(cached_content=cache.name)
    )
    meta = response.usage_metadata
    assert meta.cached_content_token_count == cached and meta.prompt_token_count > cached

    usage = usage_from_gemini(meta)
    assert usage == Usage(meta.prompt_token_count - cached, meta.candidates_token_count, cached)
    entry = default_catalog().lookup(MODEL)
    expected = (
        (meta.prompt_token_count - cached) * entry.input
        + cached * entry.cache_read
        + meta.candidates_token_count * entry.output
    ) / MILLION
    cost = compute_cost(usage, MODEL)
    assert cost.total_usd == expected and cost.cache_read_usd == cached * Decimal("0.03") / MILLION
    uncached = compute_cost(Usage(meta.prompt_token_count, meta.candidates_token_count), MODEL).total_usd
    assert cost.total_usd < uncached
    # Keeping the cache for its 10 minutes costs storage on top ($1.00 per 1M tokens per hour).
    assert cache_storage_cost(MODEL, cached, Decimal(10) / 60) == cached * Decimal("1.00") / 6 / MILLION

    with pytest.raises(errors.ClientError, match="system_instruction"):
        client.models.generate_content(
            model=MODEL,
            contents="x",
            config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="other"),
        )
    client.caches.delete(name=cache.name)
    with pytest.raises(errors.ClientError) as gone:
        client.caches.get(name=cache.name)
    assert gone.value.code == 403 and gone.value.status == "PERMISSION_DENIED"


def test_a_caches_tool_config_applies_to_the_calls_using_it(client, url) -> None:
    # The cache's toolConfig was accepted and dropped: a call using a cache that forces get_weather got text back.
    forced = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY"))
    cache = client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[CONTRACT], tools=[weather_tool()], tool_config=forced, ttl="600s"
        ),
    )
    response = client.models.generate_content(
        model=MODEL, contents="Weather in Oslo?", config=types.GenerateContentConfig(cached_content=cache.name)
    )
    assert [c.name for c in response.function_calls or []] == ["get_weather"]
    assert set(response.function_calls[0].args) == {"city"}
    client.caches.delete(name=cache.name)
    body = {
        "model": f"models/{MODEL}",
        "contents": [{"role": "user", "parts": [{"text": CONTRACT}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}},
    }
    refused = httpx.post(f"{url}/v1beta/cachedContents", json=body, headers={"x-goog-api-key": "x"})
    assert refused.status_code == 400 and "toolConfig.functionCallingConfig.mode" in refused.json()["error"]["message"]


def test_a_model_failure_mid_stream_ends_the_stream_with_the_apis_internal_error(monkeypatch) -> None:
    # Only a GeminiError became an error chunk: any other failure of the model broke the stream, where the
    # non-streaming call answers a 500 in the API's error shape.
    def failing(*args):
        yield "text", "Half an ans"
        raise RuntimeError("the local model ran out of memory")

    monkeypatch.setattr(gemini_api, "answer", failing)
    monkeypatch.setattr(gemini_response, "answer", failing)
    with ServerThread(gemini_api.create_app(engine=InstantEngine())) as served:
        client = genai.Client(api_key="x", http_options={"base_url": served})
        with pytest.raises(errors.ServerError) as whole:
            client.models.generate_content(model=MODEL, contents="hi")
        received = []
        with pytest.raises(errors.ServerError) as streamed:
            for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
                received.append(chunk.text)
    assert received == ["Half an ans"]
    for failure in (whole.value, streamed.value):
        assert failure.code == 500 and failure.status == "INTERNAL"
        assert failure.message == "The model failed: the local model ran out of memory"


def test_a_caches_google_search_tool_grounds_the_calls_using_it(client) -> None:
    # The cache's tools were only rendered into its prompt: a call using a cache that offers Google Search was
    # answered without the search's groundingMetadata, which the same tool in the request brings.
    search = [types.Tool(google_search=types.GoogleSearch())]
    cache = client.caches.create(
        model=MODEL, config=types.CreateCachedContentConfig(contents=[CONTRACT], tools=search, ttl="600s")
    )
    response = client.models.generate_content(
        model=MODEL, contents="Any news on lot 7?", config=types.GenerateContentConfig(cached_content=cache.name)
    )
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None and grounding.web_search_queries[0] == "Any news on lot 7?"
    client.caches.delete(name=cache.name)


def test_caches_are_listed_after_one_of_them_expired(client) -> None:
    # Listing read the names of every cache, expired ones too, then looked each up: the first lookup dropped the
    # expired ones, so listing failed with 403 (CachedContent not found) once any cache had expired.
    brief = client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=[CONTRACT], ttl="1s"))
    kept = client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=[CONTRACT], ttl="600s"))
    time.sleep(1.2)
    listed = [c.name for c in client.caches.list()]
    assert kept.name in listed and brief.name not in listed
    client.caches.delete(name=kept.name)


def test_an_expire_time_without_its_offset_is_refused_and_other_caches_still_serve(client, url) -> None:
    # A timestamp with no offset was kept as a naive datetime, which every later cache lookup compared with the
    # aware "now" and failed on (500, TypeError) for every cache; a text that is no timestamp was a 500 too.
    kept = client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=[CONTRACT], ttl="600s"))
    body = {"model": f"models/{MODEL}", "contents": [{"role": "user", "parts": [{"text": CONTRACT}]}]}
    for sent in ("2099-01-01T00:00:00", "soon"):
        refused = httpx.post(
            f"{url}/v1beta/cachedContents", json={**body, "expireTime": sent}, headers={"x-goog-api-key": "x"}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["message"].startswith("expireTime: an RFC 3339 timestamp with its offset")
        moved = httpx.patch(f"{url}/v1beta/{kept.name}", json={"expireTime": sent}, headers={"x-goog-api-key": "x"})
        assert moved.status_code == 400 and "expireTime" in moved.json()["error"]["message"]
    assert client.caches.get(name=kept.name).expire_time == kept.expire_time
    assert kept.name in [c.name for c in client.caches.list()]
    client.caches.delete(name=kept.name)


def test_a_cache_body_setting_both_expirations_or_what_cannot_change_is_refused_by_name(client, url) -> None:
    # ttl and expireTime are one field's two forms: with both, create kept expireTime and update kept ttl, the other
    # dropped; an update's displayName (only the expiration can change) was dropped as well.
    later = "2099-01-01T00:00:00Z"
    with pytest.raises(errors.ClientError, match="ttl and expireTime: set one of them") as both:
        client.caches.create(
            model=MODEL, config=types.CreateCachedContentConfig(contents=[CONTRACT], ttl="600s", expire_time=later)
        )
    assert both.value.code == 400
    kept = client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=[CONTRACT], ttl="600s"))
    with pytest.raises(errors.ClientError, match="ttl and expireTime: set one of them"):
        client.caches.update(name=kept.name, config=types.UpdateCachedContentConfig(ttl="60s", expire_time=later))
    renamed = httpx.patch(
        f"{url}/v1beta/{kept.name}", json={"ttl": "60s", "displayName": "other"}, headers={"x-goog-api-key": "x"}
    )
    assert renamed.status_code == 400 and "not displayName" in renamed.json()["error"]["message"]
    assert client.caches.get(name=kept.name).expire_time == kept.expire_time  # nothing refused was applied
    client.caches.delete(name=kept.name)


def test_cache_below_the_minimum_is_refused(client) -> None:
    with pytest.raises(errors.ClientError, match="min_total_token_count=1024") as refused:
        client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["too short"]))
    assert refused.value.code == 400


def test_batch_job_is_answered_and_priced_at_batch_rates(client) -> None:
    prompts = {"a": "Summarise the water cycle", "b": "List two prime numbers", "c": "Name a colour of the sky"}
    job = client.batches.create(
        model=MODEL,
        src=[
            {
                "contents": [{"role": "user", "parts": [{"text": text}]}],
                "metadata": {"key": key},
                "config": {"max_output_tokens": 4},
            }
            for key, text in prompts.items()
        ],
        config={"display_name": "three"},
    )
    assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    deadline = time.monotonic() + 30
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.display_name == "three"
    answers = {r.metadata["key"]: r.response for r in job.dest.inlined_responses}
    assert set(answers) == set(prompts)
    assert all(answers[k].text == " ".join(("Re: " + prompts[k]).split()[:4]) for k in prompts)
    entry = default_catalog().lookup(MODEL)
    batch_total = Decimal(0)
    for response in answers.values():
        meta = response.usage_metadata
        assert meta.candidates_token_count == 4
        cost = compute_cost(usage_from_gemini(meta), MODEL, mode="batch").total_usd
        assert cost == (meta.prompt_token_count * entry.batch_input + 4 * entry.batch_output) / MILLION
        assert cost * 2 == compute_cost(usage_from_gemini(meta), MODEL).total_usd  # half the standard price
        batch_total += cost
    assert batch_total > 0
    assert job.name in [b.name for b in client.batches.list()]


def test_cancelled_batch_stops(url) -> None:
    client = genai.Client(api_key="x", http_options={"base_url": url})
    job = client.batches.create(model=MODEL, src=[{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}])
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}, 400, "role"),
        ({"contents": [{"parts": []}]}, 400, "at least one part"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": -1}},
            400,
            "maxOutputTokens",
        ),
        ({"contents": [{"parts": [{"text": "x"}]}], "bogus": 1}, 400, "bogus"),
        # Log probabilities were asked for and left out of the answer unsaid (the API sends logprobsResult).
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseLogprobs": True}},
            400,
            "generationConfig.responseLogprobs: the Tokenomy emulator reports no log probabilities",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"logprobs": 3}},
            400,
            "generationConfig.logprobs",
        ),
        *(
            (
                {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {name: value}},
                400,
                f"generationConfig.{name}",
            )
            for name, value in (("topP", 1.5), ("topK", 0), ("topK", 2.5), ("seed", "x"))
        ),
        # A value the API refuses in a field it takes (one it does not know, such as a tier "gold", was answered).
        *(
            ({"contents": [{"parts": [{"text": "x"}]}], **body}, 400, f"Invalid value at '{place}'")
            for body, place in (
                ({"serviceTier": "gold"}, "serviceTier"),
                ({"store": "yes"}, "store"),
                ({"modelArmorConfig": 5}, "modelArmorConfig"),
                (
                    {"generationConfig": {"enableEnhancedCivicAnswers": "yes"}},
                    "generationConfig.enableEnhancedCivicAnswers",
                ),
                ({"generationConfig": {"audioTranscriptionConfig": []}}, "generationConfig.audioTranscriptionConfig"),
            )
        ),
    ],
)
def test_malformed_requests_are_400_naming_the_field(url, body, status, needle) -> None:
    reply = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent", json=body, headers={"x-goog-api-key": "x"})
    assert reply.status_code == status and needle in reply.json()["error"]["message"]
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_unknown_model_and_missing_key(url) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    missing = httpx.post(
        f"{url}/v1beta/models/gemini-0-nope:generateContent", json=body, headers={"x-goog-api-key": "x"}
    )
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    anonymous = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent", json=body)
    assert anonymous.status_code == 401


def test_count_tokens_equals_the_prompt_tokens_generate_content_reports(client, url) -> None:
    image = types.Part.from_bytes(data=PNG, mime_type="image/png")
    turns = [types.Content(role="user", parts=[image, types.Part(text="What colour is it?")])]
    counted = client.models.count_tokens(model=MODEL, contents=turns).total_tokens
    usage = client.models.generate_content(
        model=MODEL, contents=turns, config=types.GenerateContentConfig(max_output_tokens=2)
    ).usage_metadata
    assert counted == usage.prompt_token_count > IMAGE_TOKENS
    # The system instruction and tools count too: in a whole generateContentRequest (the Gemini API's REST form)
    # or beside the contents (Vertex AI's).
    extra = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "OBJECT"}}]}],
    }
    contents = [{"role": "user", "parts": [{"text": "What colour is it?"}]}]
    config = types.GenerateContentConfig(
        max_output_tokens=2,
        system_instruction="Be brief.",
        tools=[
            types.Tool(function_declarations=[types.FunctionDeclaration(name="weather", parameters={"type": "OBJECT"})])
        ],
    )
    reported = client.models.generate_content(model=MODEL, contents="What colour is it?", config=config)
    for body in (
        {"generateContentRequest": {"model": f"models/{MODEL}", "contents": contents, **extra}},
        {"contents": contents, **extra},
    ):
        answer = httpx.post(f"{url}/v1beta/models/{MODEL}:countTokens", json=body, headers={"x-goog-api-key": "x"})
        assert answer.json()["totalTokens"] == reported.usage_metadata.prompt_token_count
    both = httpx.post(
        f"{url}/v1beta/models/{MODEL}:countTokens",
        headers={"x-goog-api-key": "x"},
        json={"contents": contents, "generateContentRequest": {"contents": contents}},
    )
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]


def test_an_array_response_schema_is_answered_as_the_api_does(client) -> None:
    # `response_schema=list[Model]` was a 500 ("the schema does not describe a JSON object"): the API takes a
    # schema of any type for the response (an array, a string, an enum), only a function's arguments are an object.
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    for schema in (list[City], {"type": "array", "items": {"type": "string"}}, {"type": "string", "enum": ["a", "b"]}):
        config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=schema)
        reply = client.models.generate_content(model=MODEL, contents="Two cities.", config=config)
        assert reply.candidates[0].finish_reason == types.FinishReason.STOP
        assert not isinstance(json.loads(reply.text), dict)
    assert json.loads(reply.text) in ("a", "b")  # the enum's answer is one of its values
    listed = client.models.generate_content(
        model=MODEL,
        contents="Two cities.",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=list[City]),
    )
    assert isinstance(listed.parsed, list) and all(isinstance(c, City) for c in listed.parsed)


def test_enum_output_is_one_of_the_values_bare_and_a_schema_no_answer_follows_is_refused(client, url) -> None:
    # text/x.enum's schema was dropped (the answer was free text), as was a schema beside a text/plain answer.
    import enum

    class Mood(enum.Enum):
        HAPPY = "happy"
        SAD = "sad"

    config = types.GenerateContentConfig(response_mime_type="text/x.enum", response_schema=Mood)
    reply = client.models.generate_content(model=MODEL, contents="I won!", config=config)
    assert reply.text in ("happy", "sad") and reply.parsed in (Mood.HAPPY, Mood.SAD)
    ask = {"contents": [{"role": "user", "parts": [{"text": "I won!"}]}]}
    headers = {"x-goog-api-key": "x"}
    for config, named in (
        ({"responseMimeType": "text/plain", "responseSchema": {"type": "STRING"}}, "generationConfig.responseSchema"),
        ({"responseJsonSchema": {"type": "object"}}, "generationConfig.responseJsonSchema"),
        ({"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING"}}, "enum values"),
    ):
        refused = httpx.post(
            f"{url}/v1beta/models/{MODEL}:generateContent", json={**ask, "generationConfig": config}, headers=headers
        )
        assert refused.status_code == 400 and named in refused.json()["error"]["message"], refused.text


def test_int64_schema_fields_sent_as_text_as_proto3_json_writes_them_are_numbers(url) -> None:
    # Google's Schema keeps minItems, maxItems, minLength, maxLength, minProperties and maxProperties as int64, which
    # proto3 JSON writes as text ("1") and Google's discovery-based REST clients send so: the emulator checked them as
    # JSON Schema 2020-12, where "1" is no number, and answered a 400 the API does not.
    city = {"type": "STRING", "minLength": "1", "maxLength": "40"}
    schema = {
        "type": "OBJECT",
        "properties": {"cities": {"type": "ARRAY", "items": city, "minItems": "1", "maxItems": "3"}},
        "required": ["cities"],
        "minProperties": "1",
        "maxProperties": "1",
    }
    ask = {"contents": [{"role": "user", "parts": [{"text": "Name a city or two."}]}]}
    forced = {
        **ask,
        "tools": [{"functionDeclarations": [{"name": "pick", "parameters": schema}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    shaped = {**ask, "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}}
    headers = {"x-goog-api-key": "x"}
    call = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent", json=forced, headers=headers)
    assert call.status_code == 200, call.text
    args = call.json()["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]
    answer = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent", json=shaped, headers=headers)
    assert answer.status_code == 200, answer.text
    said = json.loads(answer.json()["candidates"][0]["content"]["parts"][0]["text"])
    for cities in (args["cities"], said["cities"]):  # the schema's shape (the instant engine keeps no length limits)
        assert isinstance(cities, list) and all(isinstance(c, str) for c in cities)
    # Text that is no number is refused, as Google refuses it (an int64 field it cannot read).
    wrong = {
        **shaped,
        "generationConfig": {
            **shaped["generationConfig"],
            "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "one"},
        },
    }
    refused = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent", json=wrong, headers=headers)
    assert refused.status_code == 400 and "responseSchema" in refused.json()["error"]["message"]


@pytest.mark.slow
def test_generation_configs_seed_top_k_and_top_p_reach_the_local_model() -> None:
    # topP, topK and seed were accepted and ignored: every sampled answer was drawn with seed 0 from all tokens.
    with ServerThread(gemini_api.create_app()) as served:  # the real local model
        client = genai.Client(api_key="x", http_options={"base_url": served})

        def said(**config) -> str:
            settings = types.GenerateContentConfig(temperature=2, max_output_tokens=16, **config)
            return client.models.generate_content(model=MODEL, contents="Tell me a story", config=settings).text

        by_seed = [said(seed=seed) for seed in (1, 2, 3, 1)]
        assert by_seed[0] == by_seed[3] and len(set(by_seed)) > 1, by_seed
        greedy = client.models.generate_content(
            model=MODEL, contents="Tell me a story", config=types.GenerateContentConfig(max_output_tokens=16)
        ).text
        assert [said(seed=seed, top_k=1) for seed in (1, 2)] == [greedy] * 2
        assert [said(seed=seed, top_p=0) for seed in (1, 2)] == [greedy] * 2


def masked(url: str, mask: str) -> genai.Client:
    """A google-genai client whose every call carries `updateMask` (the SDK sends none of its own; other clients, and
    the REST reference, do)."""
    sender = httpx.Client(params={"updateMask": mask})
    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url, httpx_client=sender))


def test_an_update_changes_only_what_its_update_mask_names_and_a_mask_naming_more_is_refused(client, url) -> None:
    # The updateMask was ignored: a mask naming a field no update may change (displayName, contents) was answered
    # as if absent, and a body's expiration the mask left out was applied. Gemini updates only the fields the mask
    # names, and only the expiration (ttl or expireTime) can be.
    later = "2099-01-01T00:00:00Z"
    config = types.CreateCachedContentConfig(contents=[CONTRACT], ttl="60s", display_name="contract")
    kept = client.caches.create(model=MODEL, config=config)
    moved = client.caches.update(name=kept.name, config=types.UpdateCachedContentConfig(ttl="600s"))  # no mask
    assert moved.expire_time > kept.expire_time
    for mask in ("display_name", "ttl,contents"):
        with pytest.raises(
            errors.ClientError, match=r"updateMask: (display_name|contents) cannot be updated"
        ) as refused:
            masked(url, mask).caches.update(name=kept.name, config=types.UpdateCachedContentConfig(ttl="900s"))
        assert refused.value.code == 400
    assert client.caches.get(name=kept.name).expire_time == moved.expire_time  # nothing refused was applied
    # Under mask "expire_time" the body's ttl is not read: the update sets none, which Gemini refuses.
    with pytest.raises(errors.ClientError, match="updateMask names expire_time, which the body does not set"):
        masked(url, "expire_time").caches.update(name=kept.name, config=types.UpdateCachedContentConfig(ttl="900s"))
    under_mask = masked(url, "expireTime").caches.update(
        name=kept.name, config=types.UpdateCachedContentConfig(expire_time=later)
    )
    assert under_mask.expire_time.year == 2099
    # A field outside the mask is left as it is, not refused: ttl is updated, displayName is not read.
    renamed = httpx.patch(
        f"{url}/v1beta/{kept.name}?updateMask=ttl",
        json={"ttl": "300s", "displayName": "other"},
        headers={"x-goog-api-key": "x"},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["displayName"] == "contract" and not renamed.json()["expireTime"].startswith("2099")
    client.caches.delete(name=kept.name)


def test_thoughts_and_answer_together_stay_within_max_output_tokens(client) -> None:
    # The thinking was cut at maxOutputTokens and the answer got all of maxOutputTokens again, so a response said
    # more output than its limit: Gemini's maxOutputTokens counts the thoughts as well as the answer, and a response
    # whose thinking used it all ends at MAX_TOKENS with no answer. The instant engine echoes 12 words, one token
    # each, thoughts included.
    from tokenomy.emulate.instant_engine import ANSWER_WORDS

    words = " ".join(f"w{n}" for n in range(40))
    for cap in (5, ANSWER_WORDS + 3, 2 * ANSWER_WORDS + 5):
        config = types.GenerateContentConfig(
            max_output_tokens=cap, thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)
        )
        whole = client.models.generate_content(model=MODEL, contents=words, config=config)
        usage = whole.usage_metadata
        assert (usage.thoughts_token_count or 0) + (usage.candidates_token_count or 0) == min(cap, 2 * ANSWER_WORDS)
        finish = whole.candidates[0].finish_reason
        assert finish == (types.FinishReason.STOP if cap > 2 * ANSWER_WORDS else types.FinishReason.MAX_TOKENS), cap
        answered = [part.text for part in whole.candidates[0].content.parts if not part.thought]
        assert bool(answered) == (cap > ANSWER_WORDS), (cap, answered)
        chunks = list(client.models.generate_content_stream(model=MODEL, contents=words, config=config))
        last = chunks[-1]
        assert last.candidates[0].finish_reason == finish, cap
        assert last.usage_metadata.candidates_token_count == usage.candidates_token_count, cap
        assert last.usage_metadata.thoughts_token_count == usage.thoughts_token_count, cap


# What the emulator refuses, naming the field, because it does not make what they ask for (one candidate, text only,
# no log probabilities, no Cloud Storage output, no continuation tokens).
NOT_EMULATED = {
    "candidate_count",
    "continuation_token",
    "generation_output_config",
    "image_config",
    "logprobs",
    "response_logprobs",
    "response_modalities",
    "speech_config",
}


def test_every_config_field_the_api_takes_is_answered_or_refused_by_name(url) -> None:
    """Each field of the installed google-genai's GenerateContentConfig (helpers/gemini_samples.py), as the SDK writes
    it for the Gemini API or, for a field only Vertex AI takes, Vertex AI's express mode: answered, or refused naming it
    and why. `enableEnhancedCivicAnswers`, `audioTranscriptionConfig`, `store` (which the API takes) were refused as
    unknown names, and the express mode's path was a 404 {'detail': 'Not Found'}."""
    from helpers.gemini_samples import COMPANIONS, SAMPLES, SDK_ONLY, config_fields

    developer = genai.Client(api_key="x", http_options={"base_url": url})
    vertex = genai.Client(vertexai=True, api_key="x", http_options={"base_url": url})
    answered, refused = set(), {}
    for name in config_fields():
        if name in SDK_ONLY or name == "cached_content":  # needs a cache: test_explicit_cache_hit_... sends it
            continue
        config = types.GenerateContentConfig(**{name: SAMPLES[name], **COMPANIONS.get(name, {})})
        try:
            try:
                developer.models.generate_content(model=MODEL, contents="hi", config=config)
            except ValueError:  # the SDK sends it to Vertex AI only
                vertex.models.generate_content(model=MODEL, contents="hi", config=config)
            answered.add(name)
        except errors.ClientError as error:
            refused[name] = error.message
    assert set(refused) == NOT_EMULATED, refused
    for name, message in refused.items():
        assert "Unknown name" not in message and "Tokenomy emulator" in message, (name, message)
    assert {"enable_enhanced_civic_answers", "audio_transcription_config", "store", "audio_timestamp"} <= answered
    text_only = types.GenerateContentConfig(response_modalities=["TEXT"])
    assert developer.models.generate_content(model=MODEL, contents="hi", config=text_only).text
