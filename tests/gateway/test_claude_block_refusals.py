"""A content block Claude's Messages API cannot take (reasoning it did not sign, a document by URL that is no PDF) was
refused only at call time, inside the mapping: a request no model of its route takes held a budget reservation and
left a $0 client_error ledger row per model, for a call never sent, and the 400 named a message by its index after
the mid-conversation system messages were hoisted out (the wrong message). The official SDKs drive a real gateway on
127.0.0.1 in front of a scripted Anthropic API: each is now refused before any budget or ledger row, naming the place
as the caller sent it."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import boto3
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai
from google.genai import types

from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

pytestmark = pytest.mark.slow
SAYS = "the Anthropic Messages API (model claude-sonnet-4-5-20250929)"
UNSIGNED = f"{SAYS} takes back only thinking it signed; drop the unsigned reasoning"


def test_unsigned_thinking_and_a_text_document_by_url_are_refused_before_any_budget_or_ledger_row(tmp_path) -> None:
    from helpers.claude_gateway import ClaudeGateway

    ledger = tmp_path / "ledger.duckdb"
    # $0.002: a refused call's 40 output tokens at Sonnet's $15 per million fit it (a reservation would be taken), and
    # the last call's 100 ($0.0015) fit only if nothing of it was spent or is still held
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.002"), period="month", name="app")
    gateway = ClaudeGateway(ledger, {}, {"auth": True})
    chat = openai.OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=secret, max_retries=0)
    gemini = genai.Client(api_key=secret, http_options={"base_url": gateway.url})
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id=secret,
        aws_secret_access_key="anything",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    # A system message mid-conversation: the mapping hoists it into Claude's system prompt, the caller counts it
    said = [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "hello", "reasoning_content": "greet back"},
        {"role": "user", "content": "again"},
    ]
    thought = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "greet back"}, {"type": "text", "text": "hello"}],
        },
        {"role": "user", "content": "again"},
    ]
    notes = types.Part(file_data=types.FileData(file_uri="https://example.com/notes.txt", mime_type="text/plain"))
    try:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as refused:
                reply = chat.chat.completions.create(model="claude", messages=said, max_tokens=40, stream=stream)
                list(reply) if stream else None
            body = refused.value.body
            assert body["param"] == "messages[2].reasoning_content"
            assert body["message"] == f"messages[2].reasoning_content: {UNSIGNED}"
            with pytest.raises(anthropic.BadRequestError) as refused:
                reply = claude.messages.create(model="claude", max_tokens=40, messages=thought, stream=stream)
                list(reply) if stream else None
            assert refused.value.body["error"]["message"] == f"messages.1.content.0: {UNSIGNED}"
            with pytest.raises(ClientError) as failed:
                invoke = bedrock.invoke_model_with_response_stream if stream else bedrock.invoke_model
                invoke(
                    modelId="claude",
                    body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40, "messages": thought}),
                )
            error = failed.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert error["Error"]["Message"] == f"messages.1.content.0: {UNSIGNED}"
            turn = [types.Content(role="user", parts=[types.Part(text="Summarise these notes"), notes])]
            ask = types.GenerateContentConfig(max_output_tokens=40)
            with pytest.raises(genai.errors.ClientError) as caught:
                if stream:
                    list(gemini.models.generate_content_stream(model="claude", contents=turn, config=ask))
                else:
                    gemini.models.generate_content(model="claude", contents=turn, config=ask)
            assert caught.value.code == 400
            assert caught.value.message == (
                f"contents[0].parts[1].fileData.fileUri: {SAYS} fetches PDFs by URL, "
                "not 'txt' documents; send the document's text"
            )
        assert gateway.scripted.requests == []  # nothing reached Claude
        answered = chat.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], max_tokens=100
        )
        assert answered.choices[0].message.content  # the whole budget was still there
    finally:
        gateway.stack.close()
    assert len(gateway.scripted.requests) == 1
    events = open_store(ledger).events()  # the answered call's row alone: the refused calls left none
    assert [(e.key_id, e.outcome) for e in events] == [(key.key_id, "ok")]


def test_a_text_document_that_is_not_utf8_is_refused_before_any_budget_or_ledger_row(tmp_path) -> None:
    """Claude reads a text document as a JSON string, so its bytes must be UTF-8 text: a Latin-1 file (a Converse
    caller's txt document, a Gemini caller's text/plain inline data) was refused only inside the attempt, after the
    budget reservation and with a $0 client_error row. It is now refused before either, as is a document format
    Claude does not read (a Converse caller's docx)."""
    from helpers.claude_gateway import ClaudeGateway

    ledger = tmp_path / "ledger.duckdb"
    gateway = ClaudeGateway(ledger, {})
    gemini = genai.Client(api_key="unused", http_options={"base_url": gateway.url})
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    latin1 = "Café au lait, crème brûlée".encode("latin-1")
    latin1_says = (
        "reads txt documents as UTF-8 text, and this one is not (invalid continuation byte at byte 3); "
        "re-encode it as UTF-8 or send it as a PDF"
    )
    try:
        for stream in (False, True):
            for fmt, data, says in (
                ("txt", latin1, latin1_says),
                (
                    "docx",
                    b"PK\x03\x04",
                    "reads PDF and plain-text documents, not 'docx'; convert it to PDF or text first",
                ),
            ):
                turn = [
                    {
                        "role": "user",
                        "content": [
                            {"text": "Summarise this"},
                            {"document": {"format": fmt, "name": "menu", "source": {"bytes": data}}},
                        ],
                    }
                ]
                with pytest.raises(ClientError) as failed:
                    if stream:
                        list(bedrock.converse_stream(modelId="claude", messages=turn)["stream"])
                    else:
                        bedrock.converse(modelId="claude", messages=turn)
                error = failed.value.response
                assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
                assert error["Error"]["Message"] == f"messages[0].content[1]: {SAYS} {says}"
            turn = [
                types.Content(
                    role="user",
                    parts=[
                        types.Part(text="Summarise this"),
                        types.Part.from_bytes(data=latin1, mime_type="text/plain"),
                    ],
                )
            ]
            with pytest.raises(genai.errors.ClientError) as caught:
                ask = types.GenerateContentConfig(max_output_tokens=40)
                if stream:
                    list(gemini.models.generate_content_stream(model="claude", contents=turn, config=ask))
                else:
                    gemini.models.generate_content(model="claude", contents=turn, config=ask)
            assert caught.value.code == 400
            assert caught.value.message == f"contents[0].parts[1]: {SAYS} {latin1_says}"
        assert gateway.scripted.requests == []  # nothing reached Claude
    finally:
        gateway.stack.close()
    assert open_store(ledger).events() == []  # no $0 client_error row for a call never sent
