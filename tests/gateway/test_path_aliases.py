"""Other services' paths on the gateway: the openai SDK's `AzureOpenAI` client (deployment paths, the `api-key`
header), Azure's v1 API (`/openai/v1`) and Bedrock's Anthropic Messages base (`/anthropic`, the anthropic SDK's
`AnthropicBedrockMantle`) reach the gateway's own endpoints, against real servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from helpers.recording_openai import RecordingOpenAI, arguments_for
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ASK = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
VERSION = "2024-10-21"


class Served:
    """A gateway with keys in front of a recording chat upstream and an embeddings upstream; `rows()` stops it and
    reads its ledger."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.secret, _ = KeyStore(open_store(ledger)).create(name="app")
        self.stack = contextlib.ExitStack()
        self.upstream = self.stack.enter_context(RecordingOpenAI())
        embeddings = self.stack.enter_context(InstantOpenAI())
        config = parse_config(
            {
                "auth": True,
                "models": {
                    "chat": {
                        "provider": "openai",
                        "model": "up-model",
                        "base_url": self.upstream.url,
                        "price_as": HAIKU,
                    },
                    "other": {
                        "provider": "openai",
                        "model": "other-model",
                        "base_url": self.upstream.url,
                        "price_as": HAIKU,
                    },
                    "embed": {"provider": "openai", "model": "text-embedding-3-small", "base_url": embeddings},
                },
                "routes": {"team/chat": {"model": "other"}},
            }
        )  # a name with a slash, which the SDK percent-encodes
        self.url = self.stack.enter_context(ServerThread(create_app(config, str(ledger)), lifespan="on"))

    def rows(self):
        self.stack.close()
        return open_store(str(self.ledger)).events()


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "ledger.duckdb")
    yield served
    served.stack.close()


def test_the_azure_sdk_reaches_the_route_its_deployment_names_whole_streamed_and_with_tools(served) -> None:
    url, upstream, secret = served.url, served.upstream, served.secret
    azure = openai.AzureOpenAI(azure_endpoint=url, api_key=secret, api_version=VERSION, max_retries=0)
    reply = azure.chat.completions.create(model="chat", messages=ASK, tools=[WEATHER], max_tokens=20)
    call = reply.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("get_weather", arguments_for("get_weather"))
    assert upstream.last["model"] == "up-model" and upstream.last["tools"] == [WEATHER]
    turn = [
        *ASK,
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C sunny"},
    ]
    stream = azure.chat.completions.create(
        model="chat", messages=turn, tools=[WEATHER], stream=True, stream_options={"include_usage": True}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "18C sunny" in text and upstream.last["messages"][-1]["role"] == "tool"
    vectors = azure.embeddings.create(model="embed", input=["one", "two"])
    assert len(vectors.data) == 2 and vectors.usage.prompt_tokens > 0
    rows = served.rows()
    assert sorted(r.route for r in rows) == ["chat", "chat", "embed"] and all(r.cost_usd > 0 for r in rows)
    assert all(r.key_id for r in rows)  # the gateway key came in Azure's api-key header


def test_azures_v1_api_and_its_responses_path_are_the_gateways_own(served) -> None:
    url, upstream, secret = served.url, served.upstream, served.secret
    v1 = openai.OpenAI(base_url=url + "/openai/v1", api_key=secret, max_retries=0)
    assert v1.chat.completions.create(model="chat", messages=ASK, max_tokens=5).choices[0].message.content
    assert v1.responses.create(model="chat", input="hi", max_output_tokens=5).output_text
    assert {"chat", "embed", "other"} <= {m.id for m in v1.models.list()}
    # The Responses API as AzureOpenAI calls it (no deployment in the path; `model` names the route).
    azure = openai.AzureOpenAI(azure_endpoint=url, api_key=secret, api_version="2025-04-01-preview", max_retries=0)
    assert azure.responses.create(model="other", input="hi", max_output_tokens=5).output_text
    assert upstream.last["model"] == "other-model"
    # The key in Azure's header on the v1 path too.
    assert (
        httpx.post(
            f"{url}/openai/v1/chat/completions", headers={"api-key": secret}, json={"model": "chat", "messages": ASK}
        ).status_code
        == 200
    )


def test_the_azure_sdks_model_list_is_the_gateways(served) -> None:
    """AzureOpenAI's models.list() and models.retrieve() call Azure's /openai/models (not under /v1): the gateway's
    names, not a 405 for a path it took for another."""
    azure = openai.AzureOpenAI(azure_endpoint=served.url, api_key=served.secret, api_version=VERSION, max_retries=0)
    assert {"chat", "embed", "other"} <= {m.id for m in azure.models.list()}
    assert azure.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError, match="`nope` does not exist on this gateway"):
        azure.models.retrieve("nope")


def test_a_deployment_named_with_a_slash_is_one_route(served) -> None:
    """AzureOpenAI sends model "team/chat" as /openai/deployments/team%2Fchat/...: the route of that name, not a 404
    for a path split at the decoded slash."""
    azure = openai.AzureOpenAI(azure_endpoint=served.url, api_key=served.secret, api_version=VERSION, max_retries=0)
    reply = azure.chat.completions.with_raw_response.create(model="team/chat", messages=ASK, max_tokens=5)
    assert "/openai/deployments/team%2Fchat/chat/completions?" in str(reply.http_request.url)
    assert reply.parse().model == "team/chat" and served.upstream.last["model"] == "other-model"
    assert [r.route for r in served.rows()] == ["team/chat"]


def test_the_deployment_in_the_path_names_the_route_not_the_bodys_model(served) -> None:
    url, upstream, secret = served.url, served.upstream, served.secret
    answer = httpx.post(
        f"{url}/openai/deployments/other/chat/completions?api-version={VERSION}",
        headers={"api-key": secret},
        json={"model": "chat", "messages": ASK},
    )
    assert answer.status_code == 200 and answer.json()["model"] == "other"
    assert upstream.last["model"] == "other-model"


def test_a_body_opening_with_a_byte_order_mark_goes_to_the_deployment(served) -> None:
    """JSON text may open with UTF-8's byte order mark (some Windows clients send one): the deployment still names the
    route, on embeddings (where the body's `model` was used instead) as on chat completions (where it was refused)."""
    url, upstream, secret = served.url, served.upstream, served.secret
    headers = {"api-key": secret, "content-type": "application/json"}
    bom = b"\xef\xbb\xbf"
    vectors = httpx.post(
        f"{url}/openai/deployments/embed/embeddings?api-version={VERSION}",
        headers=headers,
        content=bom + json.dumps({"model": "chat", "input": "hi"}).encode(),
    )
    assert vectors.status_code == 200, vectors.text
    assert upstream.bodies == []  # not the chat route's upstream
    answer = httpx.post(
        f"{url}/openai/deployments/other/chat/completions?api-version={VERSION}",
        headers=headers,
        content=bom + json.dumps({"messages": ASK}).encode(),
    )
    assert answer.status_code == 200, answer.text
    assert upstream.last["model"] == "other-model"
    assert sorted(r.route for r in served.rows()) == ["embed", "other"]


def test_errors_on_azure_paths_name_the_problem(served) -> None:
    url, secret = served.url, served.secret
    base = f"{url}/openai/deployments"
    bad_key = httpx.post(f"{base}/chat/chat/completions", headers={"api-key": "tk-wrong"}, json={"messages": ASK})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["message"]
    unknown = httpx.post(f"{base}/nope/chat/completions", headers={"api-key": secret}, json={"messages": ASK})
    assert unknown.status_code == 404 and "`nope` does not exist" in unknown.json()["error"]["message"]
    malformed = httpx.post(
        f"{base}/chat/chat/completions", headers={"api-key": secret}, json={"messages": ASK, "temperature": "hot"}
    )
    assert malformed.status_code == 400
    problems = json.dumps(malformed.json())
    assert "temperature" in problems and "model" not in problems.replace('"model"', "")
    for path in (
        "/openai/deployments/chat/completions",
        "/openai/deployments/chat/images/generations",
        "/openai/assistants",
        "/openai/threads/t_1/messages",
    ):  # OpenAI's shape, though it says messages
        unserved = httpx.post(url + path, headers={"api-key": secret}, json={"prompt": "hi"})
        assert unserved.status_code == 404 and "is not served by this gateway" in unserved.json()["error"]["message"]
        assert unserved.json()["error"]["code"] == "unknown_url"


def test_a_path_or_method_not_served_is_named_as_the_caller_sent_it(served) -> None:
    """A 404 or 405 on an Azure path names the path the caller sent, not the /v1 one the gateway serves it on."""
    url, headers = served.url, {"api-key": served.secret}
    deployment = "/openai/deployments/chat/chat/completions"
    wrong_method = httpx.get(f"{url}{deployment}?api-version={VERSION}", headers=headers)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["message"] == f"GET {deployment} is not allowed; send POST"
    nowhere = httpx.post(f"{url}/openai/v1/nowhere", headers=headers, json={})
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["message"].startswith("POST /openai/v1/nowhere is not served by this gateway")
    kept = httpx.get(f"{url}/openai/v1/responses/resp_1", headers=headers)
    assert kept.status_code == 404
    assert kept.json()["error"]["message"].startswith(
        "GET /openai/v1/responses/resp_1 is not served: this gateway keeps no responses"
    )


def test_no_money_is_spent_on_a_request_refused_at_the_edge(served) -> None:
    url, upstream, secret = served.url, served.upstream, served.secret
    before = len(upstream.bodies)
    answer = httpx.post(
        f"{url}/openai/deployments/chat/chat/completions",
        headers={"api-key": secret},
        content=b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}',
    )
    assert answer.status_code == 400 and "surrogate" in answer.json()["error"]["message"]
    assert len(upstream.bodies) == before
    assert sum((r.cost_usd for r in served.rows()), Decimal(0)) == 0


def test_bedrocks_anthropic_messages_base_is_the_gateways_messages_api(served) -> None:
    """Bedrock serves Anthropic's Messages API under `/anthropic` (bedrock-runtime and bedrock-mantle); an application
    on it swaps the host for the gateway's and keeps the path."""
    url, upstream, secret = served.url, served.upstream, served.secret
    mantle = anthropic.AnthropicBedrockMantle(
        base_url=url + "/anthropic", api_key=secret, aws_region="us-east-1", max_retries=0
    )
    message = mantle.messages.create(model="chat", max_tokens=20, messages=ASK)
    assert message.content[0].text and upstream.last["model"] == "up-model"
    with mantle.messages.stream(model="other", max_tokens=20, messages=ASK) as stream:
        assert "".join(stream.text_stream)
    assert upstream.last["model"] == "other-model"
    plain = anthropic.Anthropic(base_url=url + "/anthropic", api_key=secret, max_retries=0)
    with pytest.raises(anthropic.NotFoundError, match="does not exist on this gateway"):
        plain.messages.create(model="nope", max_tokens=5, messages=ASK)
    unserved = httpx.post(url + "/anthropic/v2/messages", headers={"x-api-key": secret}, json={})
    assert unserved.status_code == 404
    legacy = httpx.post(url + "/anthropic/v1/complete", headers={"x-api-key": secret}, json={})  # Anthropic's shape
    assert legacy.status_code == 404 and legacy.json()["type"] == "error"
    assert legacy.json()["error"]["message"].startswith("POST /anthropic/v1/complete is not served")
    rows = served.rows()
    assert sorted(r.route for r in rows) == ["chat", "other"]


def test_a_file_id_sent_on_azures_paths_is_azures_and_reaches_azure_only(tmp_path, monkeypatch) -> None:
    """Azure OpenAI's Files API is its own: a file id sent on Azure's paths is one of its files, and on /v1 one of
    OpenAI's. Either reached any OpenAI-format model as that model's own file id; each now reaches only its API's
    models (an Azure deployment, an OpenAI one) and is refused for the other, naming the part's file_id."""
    from tokenomy.emulate.azure_openai import create_app as create_azure
    from tokenomy.emulate.instant_engine import InstantEngine

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "unused")
    for key in ("AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"):
        monkeypatch.delenv(key, raising=False)
    part = {"type": "file", "file": {"file_id": "assistant-abc"}}
    ask = [{"role": "user", "content": [{"type": "text", "text": "Summarise"}, part]}]
    with (
        ServerThread(create_azure({"chat-prod": "gpt-4o-mini"}, InstantEngine())) as azure_url,
        RecordingOpenAI() as upstream,
    ):
        config = parse_config(
            {
                "models": {
                    "az": {"provider": "azure", "model": "chat-prod", "base_url": azure_url, "price_as": "gpt-4o-mini"},
                    "oai": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            azure = openai.AzureOpenAI(azure_endpoint=url, api_key="unused", api_version=VERSION, max_retries=0)
            plain = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            assert azure.chat.completions.create(model="az", messages=ask, max_tokens=5).choices[0].message.content
            assert plain.chat.completions.create(model="oai", messages=ask, max_tokens=5).choices[0].message.content
            assert upstream.last["messages"][0]["content"][1] == part
            for client, model, issuer in ((azure, "oai", "Azure OpenAI's"), (plain, "az", "OpenAI's")):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(model=model, messages=ask, max_tokens=5)
                assert refused.value.body["param"] == "messages[0].content[1].file.file_id"
                assert refused.value.body["message"].startswith(
                    f"model `{model}` cannot take a file id of {issuer} Files API "
                    "(`messages[0].content[1].file.file_id`)"
                )
            on_azure = openai.OpenAI(base_url=url + "/openai/v1", api_key="unused", max_retries=0)
            item = {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Summarise"},
                    {"type": "input_file", "file_id": "assistant-abc"},
                ],
            }
            with pytest.raises(openai.BadRequestError) as refused:
                on_azure.responses.create(model="oai", input=[item], max_output_tokens=5)
            assert refused.value.body["param"] == "input[0].content[1].file_id"
            assert "a file id of Azure OpenAI's Files API" in refused.value.body["message"]
            assert plain.responses.create(model="oai", input=[item], max_output_tokens=5).output_text
