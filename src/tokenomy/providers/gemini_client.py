"""The `google-genai` client for the Gemini API (AI Studio) or Vertex AI, and the Vertex AI location it is made for.

AI Studio takes an API key (the variable named by `api_key_env`, else GEMINI_API_KEY / GOOGLE_API_KEY);
Vertex AI takes a project and location (region) and Google Cloud credentials. Either can point at
another base URL (`tokenomy emulate gemini`): on a loopback URL without a key or credentials, a
placeholder stands in, as the emulator accepts any. The provider, the batch backends and `caches` make theirs here.
"""

from __future__ import annotations

import os
from typing import Any

from tokenomy.errors import ConfigError, remember_secret
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, is_loopback

KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def vertex_location(location: str | None) -> str:
    """The Vertex AI location a client is made for: the one given, else GOOGLE_CLOUD_LOCATION, else `global`. One
    lookup for the client and for every row and price that must name the location it used (`caches`, batch)."""
    return location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"


def default_endpoint(vertex: bool, location: str) -> str:
    """The endpoint google-genai calls when no base_url is given: the one its variable names (GOOGLE_GEMINI_BASE_URL,
    GOOGLE_VERTEX_BASE_URL: a proxy's, an emulator's), else the Gemini API's, or Vertex AI's in `location`."""
    named = os.environ.get("GOOGLE_VERTEX_BASE_URL" if vertex else "GOOGLE_GEMINI_BASE_URL")
    if named:
        return named
    if not vertex:
        return "https://generativelanguage.googleapis.com"
    return (
        "https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com"
    )


def gemini_client(
    vertex: bool = False,
    base_url: str | None = None,
    api_key_env: str | None = None,
    project: str | None = None,
    location: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """A `google.genai.Client` for AI Studio or Vertex AI; no SDK retries (Tokenomy's retry layer owns them)."""
    from google.genai import Client, types

    options = types.HttpOptions(
        base_url=base_url, timeout=int(timeout * 1000), retry_options=types.HttpRetryOptions(attempts=1)
    )
    if vertex:
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        location = vertex_location(location)
        if not project:
            raise ConfigError("Vertex AI needs a project: set `project` in the model config or GOOGLE_CLOUD_PROJECT")
        credentials = None
        if is_loopback(base_url):
            from google.oauth2.credentials import Credentials

            credentials = Credentials(token="tokenomy-local")  # an emulator accepts any bearer token
        return Client(vertexai=True, project=project, location=location, credentials=credentials, http_options=options)
    names = (api_key_env,) if api_key_env else KEY_VARIABLES
    key = remember_secret(next((os.environ[n] for n in names if os.environ.get(n)), None))
    if not key and is_loopback(base_url):
        key = "tokenomy-local"
    if not key:
        raise ConfigError(
            f"no Gemini API key: set {' or '.join(names)} (or name another variable with api_key_env in the "
            "model config)"
        )
    return Client(api_key=key, http_options=options)
