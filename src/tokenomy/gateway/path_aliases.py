"""Other services' paths for the APIs the gateway serves, rewritten to the gateway's own, so an application moves
behind Tokenomy by pointing its endpoint at the gateway, its code unchanged.

Bedrock's Anthropic Messages API (`https://bedrock-runtime.{region}.amazonaws.com/anthropic`, and bedrock-mantle's,
which the `anthropic` SDK's `AnthropicBedrockMantle` client calls): `/anthropic/v1/...` is `/v1/...`.

Azure OpenAI, for the openai SDK's `AzureOpenAI` client (or Azure's v1 API):

    AzureOpenAI(azure_endpoint="https://gateway", api_key=<gateway key>, api_version="2024-10-21")
    OpenAI(base_url="https://gateway/openai/v1", api_key=<gateway key>)

Each Azure path is served by the gateway's own endpoint for the operation; nothing else differs:
- `/openai/deployments/{deployment}/chat/completions` and `/embeddings`: the deployment names the route, as `model`
  does on `/v1` (Azure reads the model from the path and not from the body, and so does the gateway);
- `/openai/v1/...` (Azure's OpenAI-compatible API), `/openai/responses` (its Responses API) and `/openai/models`
  (its model list, the SDK's `models.list()`, and `/openai/models/{model}`): the `/v1` paths.
The key may come in Azure's `api-key` header. `api-version` selects a version of Azure's API; the gateway answers
in the current OpenAI shape whatever it says. Other Azure operations (legacy completions, images, audio,
assistants) are not served: they get the gateway's 404 naming what it serves.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import Scope

AZURE = "/openai/"
ANTHROPIC = "/anthropic/"
PREFIXES = (AZURE, ANTHROPIC)
# The scope key holding the deployment an Azure path names: the edge sets it as the body's `model` once it has
# parsed the body (hygiene.EdgeHygiene), so every endpoint reads the route as it would from a `/v1` request.
DEPLOYMENT = "tokenomy.azure_deployment"
DEPLOYMENT_OPERATIONS = {"chat/completions": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
# Azure paths without a version or deployment that are the `/v1` path of the same name (and `/models/{model}`)
UNVERSIONED = ("/responses", "/responses/input_tokens", "/models")


def azure_sent(sent: str | None) -> bool:
    """Whether a request was sent on an Azure OpenAI path (`sent`: the path as sent, when the gateway served it on its
    own): its file ids are Azure's (Azure OpenAI's Files API is its own, apart from OpenAI's)."""
    return sent is not None and sent.startswith(AZURE)


def served_scope(scope: Scope) -> Scope:
    """The scope of a request on one of `PREFIXES`' paths as the `/v1` request the gateway serves; the scope unchanged
    for a path it does not serve (which then gets the 404 any unknown path gets)."""
    path = scope["path"]
    if path.startswith(ANTHROPIC):
        target = path[len(ANTHROPIC) - 1 :]
        if not target.startswith("/v1/"):
            return scope
        return {**scope, "path": target, "raw_path": target.encode()}
    rest = path[len(AZURE) - 1 :]  # "/deployments/{d}/chat/completions", "/v1/embeddings", "/responses", "/models"
    deployment = None
    if rest.startswith("/v1/"):
        target = rest
    elif rest in UNVERSIONED or rest.startswith("/models/"):
        target = "/v1" + rest
    elif rest.startswith("/deployments/"):
        deployment, operation = _deployment_operation(scope)
        target = DEPLOYMENT_OPERATIONS.get(operation) if deployment else None
    else:
        target = None
    if target is None:
        return scope
    headers = scope["headers"]
    if not any(name == b"authorization" for name, _ in headers):
        key = next((value for name, value in headers if name == b"api-key"), None)
        if key:
            headers = [*headers, (b"authorization", b"Bearer " + key)]
    served = {**scope, "path": target, "raw_path": target.encode(), "headers": headers}
    if deployment is not None:
        served[DEPLOYMENT] = deployment
    return served


def _deployment_operation(scope: Scope) -> tuple[str, str]:
    """The deployment and the operation of `/openai/deployments/{deployment}/{operation}`, split on the path as sent:
    the openai SDK percent-encodes a `/` in a deployment name (a route named `openai/gpt-4o`), which the decoded path
    no longer tells from the path's own. ("", "") for a path whose segments are not those."""
    raw = scope.get("raw_path") or scope["path"].encode()
    segments = [unquote(segment) for segment in raw.decode("ascii", "replace").split("/")]
    if segments[:3] != ["", "openai", "deployments"] or len(segments) < 5:
        return "", ""
    return segments[3], "/".join(segments[4:])
