"""The server addresses a batch job keeps, without their credentials.

A job keeps the endpoint it was created for (a later `wait` or `resume` must reach the same server, not the
provider's own API, which has no such batch). A URL's password, or a proxy's token written as its user, is a secret
the ledger does not keep: it is stored as ***, and a later process takes the full URL from the variable the backend's
SDK reads it from, after checking it is the same address.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from tokenomy.errors import ConfigError, url_without_credential

# The variables a backend's SDK reads its server's address from when no --endpoint-url is given
ENDPOINT_ENVS = {
    "openai": "OPENAI_BASE_URL",
    "azure": "AZURE_OPENAI_ENDPOINT",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
}
# Where a later command finds an endpoint whose credential the ledger does not keep: the variables above, and for the
# backends whose --endpoint-url is not taken from one at submit, the variable their SDK reads it from.
_PASSWORD_ENVS = {**ENDPOINT_ENVS, "vertex": "GOOGLE_VERTEX_BASE_URL", "bedrock": "AWS_ENDPOINT_URL_BEDROCK"}
# Each URL a backend's job keeps, with the variable a later command takes it from: the storage endpoints
# (--s3-endpoint-url, --gcs-endpoint-url) from the one boto3 or google-cloud-storage reads.
_URL_ENVS = {backend: {"endpoint_url": variable} for backend, variable in _PASSWORD_ENVS.items()}
_URL_ENVS["bedrock"]["s3_endpoint_url"] = "AWS_ENDPOINT_URL_S3"
_URL_ENVS["vertex"]["gcs_endpoint_url"] = "STORAGE_EMULATOR_HOST"


def options_to_store(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """A job's options as the ledger keeps them: each endpoint URL without its credential."""
    hidden = {
        key: url_without_credential(url)
        for key in _URL_ENVS.get(backend, {})
        if isinstance(url := options.get(key), str) and url_without_credential(url) != url
    }
    return {**options, **hidden} if hidden else options


def options_to_send(job_id: str, backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """A stored job's options with each endpoint's credential back, from the environment; a ConfigError naming the
    variable to set when it is missing or holds another address."""
    options = dict(options)
    for key, variable in _URL_ENVS.get(backend, {}).items():
        url = options.get(key)
        if not (isinstance(url, str) and "***@" in urlsplit(url).netloc):
            continue
        given = os.environ.get(variable)
        if not given or url_without_credential(given) != url:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{job_id}: the ledger keeps its {flag} without the credential ({url}); set {variable} to that "
                "URL with its credential and run the command again"
            )
        options[key] = given
    return options
