"""`POST /v1/responses` driven as coding agents drive it: the request shapes OpenAI's Codex CLI and the OpenAI
Agents SDK send (developer and environment messages before the ask, function calls and their outputs across turns,
reasoning items sent back, `store: false`, streaming), through the official openai SDK to a gateway on 127.0.0.1 in
front of a recording OpenAI-format upstream, the Anthropic emulator and the Bedrock emulator."""

from __future__ import annotations

import json
import time

import openai
import pytest
from pydantic import TypeAdapter

from helpers import stand_in_aws_keys
from helpers.recording_openai import PATCH, RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Runs a command",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
PLAN = {
    "type": "function",
    "name": "update_plan",
    "description": "Updates the plan",
    "strict": False,
    "parameters": {"type": "object", "properties": {"explanation": {"type": "string"}}},
}  # no `required`


def said(text: str, role: str = "user") -> dict:
    """A message item as Codex sends it (typed parts, no id)."""
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


# Codex's opening input: the sandbox rules (developer), the environment, then the ask: two user turns in a row.
OPENING = [
    said("<permissions>workspace-write</permissions>", "developer"),
    said("<environment_context><cwd>/repo</cwd></environment_context>"),
    said("List the files"),
]
CODEX = {
    "instructions": "You are Codex.",
    "tools": [SHELL, PLAN],
    "tool_choice": "auto",
    "store": False,
    "include": [],
    "max_output_tokens": 1200,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tokenomy.emulate.anthropic_api import create_app as create_anthropic
    from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
    from tokenomy.emulate.gemini_api import create_app as create_gemini
    from tokenomy.emulate.instant_engine import InstantEngine

    ledger = tmp_path_factory.mktemp("agents") / "ledger.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "unused")
        stand_in_aws_keys(env)
        for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
            env.delenv(key, raising=False)
        with (
            RecordingOpenAI() as upstream,
            ServerThread(create_anthropic(engine=InstantEngine())) as claude,
            ServerThread(create_bedrock(engine=InstantEngine())) as bedrock,
            ServerThread(create_gemini(engine=InstantEngine())) as gemini,
        ):
            config = parse_config(
                {
                    "models": {
                        "gpt": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                        "bedrock": {
                            "provider": "bedrock",
                            "region": "us-east-1",
                            "endpoint_url": bedrock,
                            "model": BEDROCK_SONNET,
                        },
                        "gemini": {"provider": "gemini", "model": "gemini-2.5-flash", "base_url": gemini},
                    }
                }
            )
            with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
                yield upstream, url, ledger


@pytest.fixture
def client(served):
    served[0].bodies.clear()
    return openai.OpenAI(base_url=served[1] + "/v1", api_key="unused", max_retries=0)


def streamed(client, **body):
    """The final response of a streamed request, read through the SDK's stream helper."""
    with client.responses.stream(**body) as stream:
        for _ in stream:
            pass
        return stream.get_final_response()


def test_a_codex_turn_reaches_an_openai_model_whole_and_its_tool_loop_goes_on(served, client):
    """Codex's request as it sends it (`client_metadata` on every request: its installation, session and turn ids and
    a blob of workspace paths and git remotes, telemetry for OpenAI's servers that no model reads) is answered, every
    field the model takes carried, the telemetry sent on to no one; the tool loop's next turn pairs call and output."""
    upstream = served[0]
    telemetry = {
        "installation_id": "i-1",
        "session_id": "s-1",
        "turn_id": "t-1",
        "x-codex-turn-metadata": json.dumps(
            {"workspaces": {"/home/me/repo": {"associated_remote_urls": {"origin": "git@example.com:me/repo.git"}}}}
        ),
    }
    codex = {
        **CODEX,
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "s-1",
        "text": {"verbosity": "low"},
        "extra_body": {"client_metadata": telemetry},
    }
    first = streamed(client, model="gpt", input=OPENING, **codex)
    [call] = first.output
    sent = upstream.last
    assert (sent["reasoning_effort"], sent["prompt_cache_key"], sent["verbosity"]) == ("medium", "s-1", "low")
    assert sent["parallel_tool_calls"] is False and sent["stream"] is True
    assert sent["tools"][1]["function"]["parameters"] == PLAN["parameters"]
    assert "client_metadata" not in sent and "i-1" not in json.dumps(sent)
    turn = [
        *OPENING,
        {"type": "function_call", "name": call.name, "arguments": call.arguments, "call_id": call.call_id},
        {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt b.txt"},
    ]
    assert streamed(client, model="gpt", input=turn, **codex).output_text == "answer after a.txt b.txt"
    assert upstream.last["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "a.txt b.txt"}
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt", input="hi", extra_body={"client_metadata": {"n": 1}})
    assert refused.value.body["param"] == "client_metadata"


@pytest.mark.parametrize("model", ["claude", "bedrock"])
def test_codex_turns_with_two_user_messages_in_a_row_reach_claude(client, model):
    """Codex opens with its environment and the ask as two user messages, and follows a tool's output with the
    user's next words: Bedrock's Converse refuses two turns of one role in a row (Anthropic's API joins them), so
    the gateway sends them as one turn, in order."""
    first = streamed(client, model=model, input=OPENING, **CODEX)
    assert "<cwd>/repo</cwd>" in first.output_text and "List the files" in first.output_text
    turn = [
        *OPENING,
        said(first.output_text, "assistant"),
        {"type": "function_call", "name": "shell", "arguments": '{"command": ["ls"]}', "call_id": "call_ls"},
        {"type": "function_call_output", "call_id": "call_ls", "output": "a.txt b.txt"},
        said("Thanks"),
    ]
    second = streamed(client, model=model, input=turn, **CODEX)
    assert "a.txt b.txt" in second.output_text and second.output_text.endswith("Thanks")


def as_langchain_streams_it(events) -> list[dict]:
    """The assistant's items as LangChain's ChatOpenAI(use_responses_api=True) (langchain-openai 1.7) rebuilds them
    from a stream, to send back next turn: a reasoning item as output_item.added announced it, its encrypted_content
    from output_item.done, its summary from the summary deltas (no reasoning_text delta is read), the text from its
    deltas."""
    items: dict[int, dict] = {}
    for event in events:
        if event.type == "response.output_item.added" and event.item.type == "reasoning":
            items[event.output_index] = event.item.model_dump(exclude_none=True)
        elif event.type == "response.output_item.done" and event.item.type == "reasoning":
            items[event.output_index]["encrypted_content"] = event.item.encrypted_content
        elif event.type == "response.reasoning_summary_part.added":
            items[event.output_index]["summary"].append({"type": "summary_text", "text": ""})
        elif event.type == "response.reasoning_summary_text.delta":
            items[event.output_index]["summary"][event.summary_index]["text"] += event.delta
        elif event.type == "response.output_text.delta":
            items.setdefault(
                event.output_index,
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "", "annotations": []}],
                },
            )["content"][0]["text"] += event.delta
    return [items[index] for index in sorted(items)]


@pytest.mark.parametrize("summary", [None, "auto"])
def test_claudes_streamed_reasoning_is_announced_signed_so_a_client_keeping_the_added_item_can_go_on(client, summary):
    """OpenAI announces a reasoning item (output_item.added) with its encrypted content, and LangChain's stream keeps
    the item as announced. Claude's signature comes at the end of its thinking, so the gateway sends the item once
    whole: announced with its text and signature, then its deltas (and summary, when asked), done. The next turn
    LangChain builds from the stream reaches Claude signed (the emulator checks signatures). The text is in the item
    announced, so it comes in no delta (an SDK adding deltas to the announced item had it twice), and done whole."""
    from pydantic import TypeAdapter

    ask = {
        "model": "claude",
        "max_output_tokens": 1100,
        "reasoning": {"summary": summary} if summary else None,
        "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    }
    first = [said("Name one colour, in one word.")]
    events = list(client.responses.create(input=first, stream=True, **ask))
    event_type = TypeAdapter(openai.types.responses.ResponseStreamEvent)
    for event in events:
        event_type.validate_python(event.model_dump())
    [added] = [e.item for e in events if e.type == "response.output_item.added" and e.item.type == "reasoning"]
    final = events[-1].response
    assert added.encrypted_content == final.output[0].encrypted_content and added.encrypted_content
    assert added.content[0].text == final.output[0].content[0].text
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert added.content[0].text + deltas == final.output[0].content[0].text  # as a client adding deltas has it
    [text] = [e.text for e in events if e.type == "response.reasoning_text.done"]
    assert text == final.output[0].content[0].text
    summaries = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summaries == (text if summary else "") == "".join(s.text for s in final.output[0].summary)
    turn = [*first, *as_langchain_streams_it(events), said("And another?")]
    assert client.responses.create(input=turn, **ask).output_text


def test_a_reasoning_summary_asks_gemini_and_claude_for_the_thoughts_it_summarizes(served, client, monkeypatch):
    """`reasoning.summary` asks for the model's thoughts: Gemini (2.5 thinks unasked) is told include_thoughts, alone
    too, and Claude is told to show its thinking summarized; the reasoning item carries them as its summary. Without
    an effort Gemini was sent no thinking config, and its thoughts never came back to summarize."""
    from helpers.converse_capture import record_converse
    from tokenomy.providers import gemini_mapping

    sent: list[dict] = []
    original = gemini_mapping.config_from_request
    monkeypatch.setattr(
        "tokenomy.providers.gemini_provider.config_from_request",
        lambda request: sent.append(original(request)) or sent[-1],
    )
    converse = record_converse(monkeypatch)
    assert client.responses.create(
        model="gemini", input="hi", reasoning={"summary": "auto"}, max_output_tokens=64
    ).output_text
    assert sent[-1]["thinking_config"] == {"include_thoughts": True}
    budget = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    reply = client.responses.create(
        model="gemini", input="hi", reasoning={"summary": "auto"}, max_output_tokens=2048, extra_body=budget
    )
    assert sent[-1]["thinking_config"] == {"include_thoughts": True, "thinking_budget": 1024}
    assert reply.output[0].type == "reasoning" and reply.output[0].summary[0].text
    client.responses.create(
        model="bedrock", input="hi", reasoning={"summary": "auto"}, max_output_tokens=2048, extra_body=budget
    )
    thinking = converse[-1]["additionalModelRequestFields"]["thinking"]
    assert thinking == {"type": "enabled", "budget_tokens": 1024, "display": "summarized"}


FREEFORM = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /(.|\\n)+/"},
}


@pytest.mark.parametrize("stream", [False, True])
def test_codexs_freeform_apply_patch_reaches_an_openai_model_and_its_call_comes_back_next_turn(served, client, stream):
    """Codex offers GPT-5 models apply_patch as a freeform (custom) tool by default: the upstream gets it as chat
    completions' custom tool (its lark grammar intact), the model's custom call comes back as a custom_tool_call item
    whose input is the raw patch, whole or streamed (custom_tool_call_input.delta/.done events the SDK types read),
    the ledger counts it as a tool call, and the next turn's call and output reach the model paired by call_id."""
    upstream, _, ledger = served
    codex = {
        **CODEX,
        "tools": [FREEFORM, SHELL],
        "parallel_tool_calls": False,
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    }
    if stream:
        events = list(client.responses.create(model="gpt", input=OPENING, stream=True, **codex))
        event_type = TypeAdapter(openai.types.responses.ResponseStreamEvent)
        for event in events:
            event_type.validate_python(event.model_dump())
        deltas = [e for e in events if e.type == "response.custom_tool_call_input.delta"]
        [done] = [e for e in events if e.type == "response.custom_tool_call_input.done"]
        [added] = [e.item for e in events if e.type == "response.output_item.added"]
        assert "".join(e.delta for e in deltas) == done.input == PATCH and len(deltas) > 1
        assert (added.type, added.name, added.input, done.item_id) == ("custom_tool_call", "apply_patch", "", added.id)
        [helped] = streamed(client, model="gpt", input=OPENING, **codex).output  # the SDK's stream helper's answer
        assert (helped.type, helped.call_id, helped.input) == ("custom_tool_call", "call_0", PATCH)
        output = events[-1].response.output
        request_id = events[-1].response.id.removeprefix("resp_")
    else:
        reply = client.responses.create(model="gpt", input=OPENING, **codex)
        output, request_id = reply.output, reply.id.removeprefix("resp_")
    [call] = output
    assert isinstance(call, openai.types.responses.ResponseCustomToolCall)
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", PATCH) and call.call_id
    sent = upstream.last
    assert sent["tools"][0] == {
        "type": "custom",
        "custom": {
            "name": "apply_patch",
            "description": "Edit files",
            "format": {"type": "grammar", "grammar": {"definition": "start: /(.|\\n)+/", "syntax": "lark"}},
        },
    }
    assert sent["tool_choice"] == {"type": "custom", "custom": {"name": "apply_patch"}}
    turn = [
        *OPENING,
        call.model_dump(exclude_none=True),
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"},
    ]
    answer = client.responses.create(model="gpt", input=turn, stream=stream, **codex)
    text = "".join(e.delta for e in answer if e.type == "response.output_text.delta") if stream else answer.output_text
    assert text == "answer after Done!"
    assert upstream.last["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call.call_id, "type": "custom", "custom": {"name": "apply_patch", "input": PATCH}}],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": "Done!"},
    ]
    deadline = time.monotonic() + 10  # the gateway's ledger writer writes a batch a second
    while not (rows := [e for e in open_store(ledger).events() if e.request_id == request_id]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [row.tool_call_count for row in rows] == [1]


@pytest.mark.parametrize("model", ["claude", "bedrock"])
def test_a_freeform_tool_or_call_to_claude_is_refused_naming_it_and_the_codex_setting(served, client, model):
    """Claude (Anthropic's API, Bedrock) has no freeform tools: a custom tool, or a custom call sent back, is a 400
    naming where it sits, the model, and the function-tool alternative (Codex's setting), before any call."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model, input=OPENING, **{**CODEX, "tools": [SHELL, FREEFORM]})
    error = refused.value.body
    assert error["param"] == "tools[1].type" and "apply_patch_freeform = false" in error["message"]
    assert (
        "cannot take a freeform (custom) tool" in error["message"]
        and "function tool taking a string" in (error["message"])
        and "model `" in error["message"]
    )
    turn = [
        *OPENING,
        {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": PATCH},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "Done!"},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model, input=turn, **CODEX)
    assert refused.value.body["param"] == "input[3]" and "freeform (custom) tool call" in refused.value.body["message"]


@pytest.mark.parametrize(
    ("tool", "fix"),
    [
        ({"type": "web_search", "external_web_access": False}, '`web_search = "disabled"`'),
        ({"type": "file_search", "vector_store_ids": ["vs_1"]}, "remove the tool"),
        # Built-in tools the caller runs, not OpenAI's servers (the 400 said the servers ran them): a function tool does it.
        ({"type": "shell"}, "built-in shell call is not carried by this gateway; declare a function tool for it"),
        ({"type": "apply_patch"}, "declare a function tool for it (or a custom tool"),
    ],
)
def test_tools_codex_offers_that_no_model_here_can_take_are_refused_with_the_setting_that_drops_them(
    served, client, tool, fix
):
    """Codex offers OpenAI's models web search (in its cached mode): the gateway runs no search, so the 400 names
    the tool and how to stop Codex sending it."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt", input=OPENING, **{**CODEX, "tools": [SHELL, tool]})
    assert refused.value.body["param"] == "tools[1].type" and fix in refused.value.body["message"]
    assert served[0].bodies == []


def test_a_cap_on_hosted_tool_calls_holds_where_none_can_run(served, client):
    """`max_tool_calls` (the Agents SDK's ModelSettings.extra_args) caps calls of OpenAI's hosted tools; the gateway
    runs none and refuses any offered, so the cap holds and the function tools are called as asked."""
    reply = client.responses.create(
        model="gpt", input=[said("Weather?")], tools=[SHELL], max_output_tokens=50, extra_body={"max_tool_calls": 1}
    )
    assert [item.type for item in reply.output] == ["function_call"] and "max_tool_calls" not in served[0].last
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt", input="hi", extra_body={"max_tool_calls": 0})
    assert refused.value.body["param"] == "max_tool_calls"


@pytest.mark.parametrize("route", ["gpt", "claude", "bedrock"])
def test_codexs_prompt_cache_key_is_sent_to_openai_and_honoured_unsent_by_prefix_caches(served, client, route):
    """Codex sends `prompt_cache_key` (its conversation id) with every request, with no setting to stop it: an OpenAI
    model gets it; Claude and Bedrock cache by prefix at the route's cache points, with no such field, so the request
    is answered there (it was a 400 naming the field, so no Codex request reached them). Chat completions too."""
    key = "019a3f2e-codex-conversation"
    answer = client.responses.create(model=route, input=OPENING, prompt_cache_key=key, **CODEX)
    assert answer.status == "completed"
    chat = client.chat.completions.create(
        model=route, messages=[{"role": "user", "content": "hi"}], max_tokens=8, prompt_cache_key=key
    )
    assert chat.choices[0].finish_reason in ("stop", "length")
    if route == "gpt":
        assert [body["prompt_cache_key"] for body in served[0].bodies] == [key, key]
    with pytest.raises(openai.BadRequestError, match="prompt_cache_key"):
        client.chat.completions.create(
            model=route, messages=[{"role": "user", "content": "hi"}], max_tokens=8, extra_body={"prompt_cache_key": 7}
        )
    with pytest.raises(openai.BadRequestError, match="prompt_cache_key"):
        client.responses.create(model=route, input="hi", extra_body={"prompt_cache_key": ["k"]})
