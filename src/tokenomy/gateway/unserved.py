"""What the gateway answers a request on a path it does not serve (404) or with a method a path does not take (405):
each API's own error shape, chosen by the path's look (`hygiene.api_of`: Bedrock Runtime's, Anthropic's for Claude
on Vertex AI and the Messages API, Google's for the Gemini API and Vertex AI's other paths, else OpenAI's), so the
caller's SDK shows the message, and a message naming what the gateway serves."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from tokenomy.gateway.anthropic_errors import anthropic_error
from tokenomy.gateway.converse_routes import bedrock_error
from tokenomy.gateway.gemini_errors import gemini_error
from tokenomy.gateway.hygiene import api_of
from tokenomy.gateway.responses import error

SERVED = (
    "POST /v1/chat/completions, POST /v1/responses (and /v1/responses/input_tokens), POST /v1/embeddings, "
    "POST /v1/messages (and /v1/messages/count_tokens), POST /model/{modelId}/converse[-stream], "
    "/model/{modelId}/invoke[-with-response-stream] (and /model/{modelId}/count-tokens), "
    "POST /v1beta/models/{model}:generateContent (and :streamGenerateContent, :countTokens), /v1beta/cachedContents"
    "[/{id}], GET /v1/models[/{model}], "
    "GET /healthz, GET /metrics, GET /openapi.json and the cost console at GET /dashboard; "
    "Azure OpenAI's /openai/deployments/{deployment}/chat/completions and /embeddings, "
    "/openai/responses, GET /openai/models and /openai/v1/...; Vertex AI's .../publishers/anthropic/models/{model}:"
    "rawPredict (and :streamRawPredict) and .../publishers/google/models/{model}:generateContent (and "
    ":streamGenerateContent, :countTokens)"
)


def unserved(method: str, path: str, status: int, headers: dict[str, str], sent: str | None = None) -> JSONResponse:
    """The 404 (no such path) or 405 (not with this method) for a request the gateway does not serve, in the error
    shape of the API the path belongs to, naming what the gateway serves of it. `path` is the path as served, `sent`
    the caller's when the gateway serves it on another's (Azure's /openai/..., Vertex's): the message names that."""
    asked = f"{method} {sent or path}"
    if status == 405:
        message = f"{asked} is not allowed; send {headers.get('Allow', 'POST')}"
    else:
        message = f"{asked} is not served by this gateway; it serves {SERVED}"
        if path.startswith("/v1/responses/"):  # retrieve, delete, cancel, input items
            message = (
                f"{asked} is not served: this gateway keeps no responses (each call is in its ledger) and "
                "serves POST /v1/responses and /v1/responses/input_tokens only; send each request's whole "
                "conversation in `input`"
            )
        elif path.rstrip("/") in ("/docs", "/redoc"):
            message = (
                f"{asked} is not served: the interactive API page loads its scripts from a CDN, and the gateway "
                "serves nothing from elsewhere; open GET /openapi.json (the API's description) in an OpenAPI viewer"
            )
        elif path.rstrip("/").endswith(("/chat/completions", "/messages", "/models")):
            message += " (the SDK's base_url should end in /v1 for OpenAI's SDK, without it for Anthropic's)"
    api = api_of(sent or path)  # the API the caller speaks, by the path it sent
    if api == "bedrock":
        if status == 404:
            message = (
                f"{asked} is not served by this gateway: of Bedrock Runtime it serves Converse and "
                "ConverseStream (boto3's converse, converse_stream) on POST /model/{modelId}/converse[-stream], and "
                "InvokeModel with Claude's body on POST /model/{modelId}/invoke[-with-response-stream], and "
                "CountTokens (count_tokens) on POST /model/{modelId}/count-tokens"
            )
        return bedrock_error(status, message, headers)
    if status == 404 and ("/projects/" in path or "/publishers/" in path):  # Vertex AI's paths
        message = (
            f"{asked} is not served by this gateway: of Vertex AI it serves Gemini's generateContent, "
            "streamGenerateContent and countTokens on POST /v1beta1/projects/{project}/locations/{location}/"
            "publishers/google/models/{model}:... (google-genai with vertexai=True) and Claude's rawPredict and "
            "streamRawPredict on POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/"
            "{model}:... (the anthropic SDK's AnthropicVertex), {model} naming a gateway route; every model the "
            "gateway has is reached through them"
        )
    if api == "anthropic":
        return anthropic_error(status, message, headers)
    if api == "gemini":
        return gemini_error(status, message, headers)
    return error(
        status,
        message,
        "invalid_request_error",
        "unknown_url" if status == 404 else "method_not_allowed",
        headers=headers,
    )
