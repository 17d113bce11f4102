"""Bedrock's InvokeModel with a text-completion model's own body, as boto3 callers and LangChain's `BedrockLLM` send
it: Amazon Titan Text's `{"inputText", "textGenerationConfig"}`, Meta Llama's `{"prompt", "max_gen_len", ...}` and
Mistral AI's `{"prompt", "max_tokens", "top_k", "stop", ...}`.

The prompt is the model's own text, chat template and all, so the body goes as written (`ChatRequest.native_body`)
to a Bedrock model of its family, and only there: every model the route may reach (its fallbacks and tiers too) must
be one, else the request is a 400 naming the family and the fix (a route to such a model, or Converse, which the
gateway serves for every model). The call is admitted, reserved at the body's cap, retried and recorded as a chat
call (`invoke_routes`); its answer is the family's own body as the model answered it, with Bedrock's token-count
headers and the `tokenomy` object beside it.
"""

from __future__ import annotations

from typing import Any

from tokenomy.chat_response import ChatResponse
from tokenomy.gateway.calls import route_models
from tokenomy.gateway.responses import tokenomy_fields
from tokenomy.messages import ChatRequest, Message
from tokenomy.providers.bedrock_families import mistral_sign
from tokenomy.providers.bedrock_prompt_bodies import FAMILY_NAMES, TITAN_CONFIG, model_family, prompt_and_cap

BEDROCK = "aws.bedrock"
NO_STREAM = (
    "the gateway answers a text-completion body (Titan Text's, Llama's, Mistral's) whole: call InvokeModel "
    "(`invoke_model`), or ConverseStream for a stream"
)


def _reached(gw, route, name: str) -> list[tuple[str, str, str | None]]:
    """Each model the route may reach: its name, its provider, and its text-completion family (None: none, or not
    on Bedrock)."""
    out = []
    for model in route_models(gw, route, name):
        spec = gw.client.spec_for(model)
        provider = gw.client.provider_for(spec).name
        out.append((model, provider, model_family(spec.model) if provider == BEDROCK else None))
    return out


def _written_for(body: dict[str, Any]) -> set[str]:
    """The families a text-completion body may be written for: a bare `prompt` body is Llama's or Mistral's."""
    if "inputText" in body:
        return {"titan"}
    if "max_gen_len" in body:
        return {"llama"}
    return {"mistral"} if mistral_sign(body) else {"llama", "mistral"}


def prompt_family(gw, route, name: str, body: Any) -> str | None:
    """The family (titan | llama | mistral) whose body `body` is, on a route whose every model takes it; None for a
    body of another kind (Claude's, an embedding model's). A ValueError names the family and the fix for a route
    that may reach another model."""
    if not isinstance(body, dict) or "messages" in body or "anthropic_version" in body:
        return None
    if "prompt" not in body and "inputText" not in body:
        return None
    reached = _reached(gw, route, name)
    families = {family for _, _, family in reached}
    if "prompt" not in body and TITAN_CONFIG not in body and families != {"titan"}:
        return None  # `inputText` alone: Titan Text Embeddings' body too, which a route to Titan Text cannot mean
    written = _written_for(body)
    other = next(((m, p, f) for m, p, f in reached if f not in written), None)
    if other is None and len(families) > 1:  # both a Llama and a Mistral model: two answer shapes for one call
        other = next((m, p, f) for m, p, f in reached if f != reached[0][2])
    if other is not None:
        own = " or ".join(FAMILY_NAMES[family] for family in sorted(written))
        model, provider, family = other
        if family is not None:
            what = f"{FAMILY_NAMES[family]} on Bedrock"
        else:
            what = "a Bedrock model of another family" if provider == BEDROCK else f"a model on {provider}"
        raise ValueError(
            f"this is an InvokeModel body for {own} models, which the gateway sends as written to such models on "
            f"Bedrock only, and `{name}` may reach `{model}` ({what}); send it on a route whose models are all {own} "
            "models on Bedrock, or send the conversation through Converse (`client.converse(...)`), which the gateway "
            "serves for every model"
        )
    return reached[0][2]


def prompt_request(body: dict[str, Any], family: str) -> ChatRequest:
    """The call for a text-completion body: the body itself, sent as written, and its prompt and cap, which the
    estimates and the budget read. A ValueError names a field of the wrong type."""
    prompt, cap = prompt_and_cap(body, family)
    return ChatRequest(messages=[Message("user", prompt)], max_tokens=cap, native_body=body)


def answer(response: ChatResponse) -> dict[str, Any]:
    """The family's answer as the model gave it, with the `tokenomy` object every answer of the gateway carries."""
    return {**response.raw["answer"], "tokenomy": tokenomy_fields(response)}
