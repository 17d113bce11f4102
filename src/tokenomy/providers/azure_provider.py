"""Azure OpenAI: the OpenAI provider with the `openai` SDK's AzureOpenAI client.

Azure serves OpenAI models from *deployments*: the caller's model id is a deployment name, the URL is
`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`, and the SDK's Azure
client builds it. The wire format is OpenAI's, so requests and responses go through the one OpenAI
wire module (`openai_wire`) via `OpenAIProvider`; only the client and the credentials differ.

Credentials, first found wins: the key in `api_key_env` (default AZURE_OPENAI_API_KEY); a Microsoft
Entra ID bearer token in AZURE_OPENAI_AD_TOKEN (e.g. `az account get-access-token --resource
https://cognitiveservices.azure.com`); else, when the optional `azure-identity` package is
installed, a token provider over DefaultAzureCredential. Tokenomy does not depend on azure-identity.
"""

from __future__ import annotations

import os
from typing import Any

from tokenomy.errors import ConfigError, ProviderError, remember_secret
from tokenomy.messages import ChatRequest
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, url_server
from tokenomy.providers.openai_provider import OpenAIProvider, map_openai_error

DEFAULT_API_VERSION = "2024-10-21"  # the data-plane inference API's latest GA version (Azure's API reference)
KEY_ENV = "AZURE_OPENAI_API_KEY"
TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
VERSION_ENV = "OPENAI_API_VERSION"  # the SDK's own variable for the api-version
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
# The first api-version (2024-09-01-preview) that takes `stream_options`: older ones (2024-06-01 GA, ...) answer
# 400 "Unrecognized request argument supplied: stream_options", and send no usage in a stream.
STREAM_OPTIONS_SINCE = "2024-09-01"
# The first api-version (2024-09-01-preview) that takes `max_completion_tokens`, which reasoning deployments require
# (they refuse max_tokens: "Use 'max_completion_tokens' instead"); on older ones the cap goes as max_tokens.
COMPLETION_CAP_SINCE = "2024-09-01"


def _entra_token_provider() -> Any | None:
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider  # type: ignore[import-not-found]
    except ImportError:
        return None
    return get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)


def azure_credentials(api_key_env: str | None = None, api_key: str | None = None) -> dict[str, Any]:
    """The AzureOpenAI credential argument: a key, an Entra ID token, or an Entra ID token provider."""
    key = remember_secret(api_key or os.environ.get(api_key_env or KEY_ENV))
    if key:
        return {"api_key": key}
    token = remember_secret(os.environ.get(TOKEN_ENV))
    if token:
        return {"azure_ad_token": token}
    provider = _entra_token_provider()
    if provider is not None:
        return {"azure_ad_token_provider": provider}
    raise ConfigError(
        f"Azure OpenAI needs credentials: set {api_key_env or KEY_ENV} to the resource's key, or {TOKEN_ENV} "
        f"to a Microsoft Entra ID token (az account get-access-token --resource https://cognitiveservices.azure.com), "
        "or install azure-identity to use DefaultAzureCredential"
    )


def resolved_version(api_version: str | None) -> str:
    return api_version or os.environ.get(VERSION_ENV) or DEFAULT_API_VERSION


def azure_client(
    endpoint: str | None = None,
    api_version: str | None = None,
    api_key_env: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_retries: int = 0,
):
    """An `openai.AzureOpenAI` client for `endpoint` (default AZURE_OPENAI_ENDPOINT) and `api_version`
    (default OPENAI_API_VERSION, else DEFAULT_API_VERSION). Used by the provider and the batch backend."""
    import openai

    endpoint = endpoint or os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        raise ConfigError(
            f"Azure OpenAI needs the resource endpoint (https://RESOURCE.openai.azure.com): set `base_url` on "
            f"the model in tokenomy.yaml, --endpoint-url, or {ENDPOINT_ENV}"
        )
    return openai.AzureOpenAI(
        azure_endpoint=endpoint.rstrip("/"),
        api_version=resolved_version(api_version),
        timeout=timeout,
        max_retries=max_retries,
        **azure_credentials(api_key_env, api_key),
    )


class AzureOpenAIProvider(OpenAIProvider):
    """Chat Completions on an Azure OpenAI resource; the request's model is the deployment name."""

    name = "azure"
    deployment_names = True  # the model id is a deployment: rows are recorded under the model it is priced as
    file_apis = frozenset({"azure"})  # Azure OpenAI's own Files API: an id of OpenAI's is none of its files
    openai_proper = True  # OpenAI's API wherever the resource is: it refuses what compatible servers take

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 0,
        api_version: str | None = None,
    ) -> None:
        self.client = azure_client(base_url, api_version, api_key_env, api_key, timeout, max_retries)
        self.base_url = base_url or os.environ.get(ENDPOINT_ENV)
        self.server = url_server(str(self.client.base_url))  # the resource's host
        self.api_version = resolved_version(api_version)
        self.completion_cap = self.api_version >= COMPLETION_CAP_SINCE

    def _params(self, request: ChatRequest, stream: bool = False) -> dict[str, Any]:
        """OpenAI's arguments; a stream on an api-version older than 2024-09-01 without stream_options (its usage is
        estimated, and said so)."""
        params = super()._params(request, stream)
        if stream and self.api_version < STREAM_OPTIONS_SINCE:
            params["extra_body"].pop("stream_options", None)
        return params

    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` (OpenAI's embeddings request, `model` the deployment) to the deployment's /embeddings; the
        answer as Azure sent it. Through the client's own `post`, so the body goes as given: `embeddings.create`
        would ask for base64 when the caller asked for no encoding, and turn it back into floats."""
        try:
            answer = self.client.post("/embeddings", body=body, cast_to=object)
        except Exception as exc:
            raise self.map_error(exc) from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise ProviderError(f"Azure resource {self.base_url} sent no embeddings list", "server_error", reached=True)
        return answer

    def map_error(self, exc: Exception) -> ProviderError:
        """The SDK's error, with what to check when Azure's 404 names a deployment or an unknown route."""
        error = map_openai_error(exc)
        if error.status != 404:
            return error
        body = getattr(exc, "body", None)
        if isinstance(body, dict) and body.get("code") == "DeploymentNotFound":
            hint = "[DeploymentNotFound]: check the deployment name (`model:` in tokenomy.yaml, or azure/<deployment>)"
        else:
            hint = f"check the endpoint and the api-version ({self.api_version})"
        hinted = ProviderError(
            f"{error} (Azure resource {self.base_url}) {hint}", error.kind, error.retry_after, 404, code=error.code
        )
        hinted.innererror, hinted.upstream_param = error.innererror, error.upstream_param  # passed on, as for any 4xx
        return hinted
