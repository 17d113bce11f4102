"""Bedrock's InvokeModel with a text-completion model's own body on the gateway: boto3's `invoke_model` with Amazon
Titan Text's, Meta Llama's and Mistral AI's bodies → `tokenomy serve` → the Bedrock emulator, the body reaching it as
written and the family's answer coming back, recorded in the ledger at the answer's counts; and the 400 naming the
family and the fix on a route that may reach another model."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers.claude_gateway import ClaudeGateway
from tokenomy.emulate import bedrock_runtime

MODELS = {
    "titan": "amazon.titan-text-express-v1",
    "llama": "meta.llama3-8b-instruct-v1:0",
    "mistral": "mistral.mistral-7b-instruct-v0:2",
}
PROMPT = "Name three colours of the rainbow please"


class Served(ClaudeGateway):
    """The Claude gateway with a Titan Text, a Llama and a Mistral model on its Bedrock emulator, and a route from
    Llama to Mistral and one capping Titan's output; `received` holds the (model id, body) InvokeModel calls the emulator was sent."""

    def __init__(self, ledger, monkeypatch) -> None:
        routes = {
            "llama-or-mistral": {"model": "llama", "fallback": ["mistral"]},
            "capped-titan": {"model": "titan", "tokens": {"max_tokens": 2}},
        }
        super().__init__(ledger, routes, None, MODELS)
        self.received: list[tuple[str, dict]] = []
        original = bedrock_runtime.to_converse
        monkeypatch.setattr(
            bedrock_runtime,
            "to_converse",
            lambda model, body, fix: self.received.append((model, body)) or original(model, body, fix),
        )
        config = Config(retries={"total_max_attempts": 1})
        self.client = boto3.client("bedrock-runtime", endpoint_url=self.url, region_name="us-east-1", config=config)

    def invoke(self, model: str, body: dict) -> tuple[dict, dict, str]:
        reply = self.client.invoke_model(modelId=model, body=json.dumps(body))
        metadata = reply["ResponseMetadata"]
        return json.loads(reply["body"].read()), metadata["HTTPHeaders"], metadata["RequestId"]


@pytest.fixture
def served(tmp_path, monkeypatch):
    served = Served(tmp_path / "ledger.duckdb", monkeypatch)
    yield served
    served.stack.close()


def counted(headers: dict) -> tuple[int, int]:
    return int(headers["x-amzn-bedrock-input-token-count"]), int(headers["x-amzn-bedrock-output-token-count"])


def recorded(served: Served, request_id: str, route: str, tokens: tuple[int, int], answer: dict) -> None:
    [row] = served.rows(request_id)
    assert (row.route, row.outcome, row.model) == (route, "ok", MODELS[route])
    assert (row.input_tokens, row.output_tokens) == tokens and row.cost_usd > 0
    assert Decimal(answer["tokenomy"]["cost_usd"]) == row.cost_usd


def test_titan_texts_body_reaches_titan_as_written_and_its_answer_comes_back(served) -> None:
    body = {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 3, "temperature": 0.2, "topP": 0.9}}
    answer, headers, request_id = served.invoke("titan", body)
    assert served.received == [(MODELS["titan"], body)]
    [result] = answer["results"]
    assert result["outputText"].strip() and result["completionReason"] == "LENGTH" and result["tokenCount"] == 3
    assert (answer["inputTextTokenCount"], result["tokenCount"]) == counted(headers)
    recorded(served, request_id, "titan", counted(headers), answer)


def test_llamas_body_reaches_llama_as_written_and_its_answer_comes_back(served) -> None:
    body = {"prompt": f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>{PROMPT}", "max_gen_len": 40}
    answer, headers, request_id = served.invoke("llama", body)
    assert served.received == [(MODELS["llama"], body)]
    assert answer["generation"].strip() and answer["stop_reason"] == "stop"
    assert (answer["prompt_token_count"], answer["generation_token_count"]) == counted(headers)
    recorded(served, request_id, "llama", counted(headers), answer)


def test_mistrals_body_reaches_mistral_as_written_and_is_counted_from_bedrocks_headers(served) -> None:
    body = {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": 2, "top_k": 5, "stop": ["\n\n"]}
    answer, headers, request_id = served.invoke("mistral", body)
    assert served.received == [(MODELS["mistral"], body)]
    assert [set(output) for output in answer["outputs"]] == [{"text", "stop_reason"}]
    assert answer["outputs"][0]["stop_reason"] == "length" and set(answer) == {"outputs", "tokenomy"}
    assert counted(headers)[1] == 2
    recorded(served, request_id, "mistral", counted(headers), answer)


def test_a_routes_output_cap_is_written_where_the_body_holds_its_own(served) -> None:
    body = {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 40, "temperature": 0}}
    answer, headers, _ = served.invoke("capped-titan", body)
    assert served.received == [
        (MODELS["titan"], {**body, "textGenerationConfig": {"maxTokenCount": 2, "temperature": 0}})
    ]
    assert answer["results"][0]["tokenCount"] == counted(headers)[1] == 2
    served.invoke("capped-titan", {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 1}})  # lower: kept
    served.invoke("capped-titan", {"inputText": PROMPT, "textGenerationConfig": {}})  # none: the route's
    assert [body["textGenerationConfig"]["maxTokenCount"] for _, body in served.received[1:]] == [1, 2]


@pytest.mark.parametrize(
    ("route", "body", "named"),
    [
        (
            "fast",
            {"inputText": PROMPT, "textGenerationConfig": {}},
            "for Amazon Titan Text models, which the gateway sends as written to such models on Bedrock only, and "
            "`fast` may reach `fast` (a model on openai); send it on a route whose models are all Amazon Titan Text "
            "models on Bedrock, or send the conversation through Converse",
        ),
        ("haiku", {"prompt": PROMPT, "max_gen_len": 5}, "`haiku` (a Bedrock model of another family)"),
        ("mistral", {"prompt": PROMPT, "max_gen_len": 5}, "for Meta Llama models"),
        ("llama", {"prompt": "[INST] hi [/INST]"}, "for Mistral AI models"),
        ("titan", {"prompt": PROMPT}, "`titan` (Amazon Titan Text on Bedrock)"),
        ("llama-or-mistral", {"prompt": PROMPT}, "`mistral` (Mistral AI on Bedrock)"),
        ("llama", {"prompt": PROMPT, "max_gen_len": "5"}, "max_gen_len: expected a whole number of tokens"),
        ("titan", {"inputText": PROMPT, "textGenerationConfig": []}, "textGenerationConfig: expected an object"),
        ("llama", {"prompt": " "}, "prompt: required, the prompt's text"),
    ],
)
def test_a_body_its_routes_models_cannot_take_is_refused_naming_the_family_and_the_fix(
    served, route, body, named
) -> None:
    with pytest.raises(ClientError) as refused:
        served.invoke(route, body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in refused.value.response["Error"]["Message"]
    assert served.received == [] and served.upstream.bodies == []


def test_a_text_completion_body_is_not_streamed_and_header_parameters_are_refused(served) -> None:
    stream = httpx.post(f"{served.url}/model/llama/invoke-with-response-stream", json={"prompt": PROMPT})
    assert stream.status_code == 400 and "call InvokeModel (`invoke_model`)" in stream.json()["message"]
    with pytest.raises(ClientError) as refused:
        served.client.invoke_model(
            modelId="llama", body=json.dumps({"prompt": PROMPT}), guardrailIdentifier="g", guardrailVersion="1"
        )
    assert "guardrailIdentifier: not carried by the gateway for a text-completion body" in str(refused.value)
    assert served.received == []


def test_a_field_the_model_does_not_take_reaches_it_and_its_refusal_comes_back(served) -> None:
    body = {"prompt": PROMPT, "max_gen_len": 5, "top_k": 3}  # top_k: Mistral's, not Llama's
    with pytest.raises(ClientError) as refused:
        served.invoke("llama", body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "extraneous key [top_k] is not permitted" in refused.value.response["Error"]["Message"]
    assert served.received == [(MODELS["llama"], body)]  # sent as written, never dropped
