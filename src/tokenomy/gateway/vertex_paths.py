"""Gemini on Vertex AI's request paths on the gateway, so an application on `google-genai` with `vertexai=True`
moves behind Tokenomy by its base URL, its code unchanged:

    genai.Client(vertexai=True, project="p", location="us-central1", http_options={"base_url": "http://gateway:8080"},
                 credentials=google.oauth2.credentials.Credentials(token=<gateway key>))
    genai.Client(vertexai=True, api_key=<gateway key>, http_options={"base_url": "http://gateway:8080"})  # express

The SDK sends the first to `/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:
generateContent` (and `:streamGenerateContent?alt=sse`, `:countTokens`) with the credentials' token as
`Authorization: Bearer`, the second (Vertex AI's express mode) to `/v1beta1/publishers/google/models/{model}:...`
with the key in `x-goog-api-key`. On Vertex the SDK sends and parses the Gemini API's JSON (camelCase; a part's
`inlineData` may spell `mime_type`, which the Gemini mapping reads too), so each path is served by the Gemini API's
endpoint (`gemini_routes`) for `models/{model}:...`: `{model}` names the gateway route, and both ways of sending the
key are the ones that endpoint takes; `GET .../publishers/google/models[/{model}]` (models.list, models.get) is its
list. The project and location are the caller's business and are not checked.
Its context caches (`client.caches` on Vertex: `.../projects/{project}/locations/{location}/cachedContents[/{id}]`)
are the Gemini API's `cachedContents` (`gemini_caches`), named back in Vertex's form, `projects/{project}/locations/
{location}/cachedContents/{id}`, from the parent kept in the scope (`VERTEX_PARENT`).
Claude on Vertex (`publishers/anthropic`) has endpoints of its own (`vertex_routes`); other Vertex paths get the
gateway's 404 naming what it serves.
"""

from __future__ import annotations

import re

from starlette.types import Scope

# What every Vertex AI path the SDK builds starts with (the SDK's v1beta1, or v1 by GOOGLE_GENAI_API_VERSION).
PREFIXES = ("/v1beta1/", "/v1/projects/", "/v1/publishers/")
# `publishers/google/models` alone is the SDK's models.list(): the Gemini API's list (the SDK reads its `models`)
_GEMINI = re.compile(r"/v1(?:beta1)?/(?:projects/[^/]+/locations/[^/]+/)?publishers/google/(models(?:/.+)?)")
# Vertex's context caches; express mode (an API key, no project) creates and lists on `/v1beta1/cachedContents`
_CACHES = re.compile(r"/v1(?:beta1)?/(?:(projects/[^/]+/locations/[^/]+)/)?(cachedContents(?:/[^/]+)?)")
VERTEX_PARENT = "tokenomy.vertex_parent"  # the scope's `projects/{p}/locations/{l}` of a Vertex cache path ("": none)


def served_scope(scope: Scope) -> Scope:
    """The scope of a request for a Gemini model on a Vertex AI path as the Gemini API request the gateway serves
    (`/v1beta/models/{model}:...`); the scope unchanged for any other path."""
    matched = _GEMINI.fullmatch(scope["path"])
    if matched is not None:
        target = "/v1beta/" + matched.group(1)
        return {**scope, "path": target, "raw_path": target.encode()}
    cache = _CACHES.fullmatch(scope["path"])
    if cache is not None:
        target = "/v1beta/" + cache.group(2)
        return {**scope, "path": target, "raw_path": target.encode(), VERTEX_PARENT: cache.group(1) or ""}
    return scope
