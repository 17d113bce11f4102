"""Azure OpenAI Global Batch: the OpenAI batch backend with the SDK's AzureOpenAI client.

Azure's Batch API is OpenAI's under `/openai` with an api-version: the batch and its lines name
`/chat/completions`, and each line's `model` is the *deployment* (a Global Batch deployment). A job
remembers the deployment, endpoint, api-version and key variable (`job_options`, from the model's
entry in tokenomy.yaml, --endpoint-url, or AZURE_OPENAI_ENDPOINT / OPENAI_API_VERSION), so status,
results and cancel work from any later process. Records are priced at the batch price of the model
the deployment serves (Azure's Global Batch is billed at half the Global Standard price).
"""

from __future__ import annotations

from dataclasses import replace

from tokenomy.batch.backends import SubmitOptions
from tokenomy.batch.openai_backend import OpenAIBatchBackend

ENDPOINT = "/chat/completions"


def job_options(model: str, options: SubmitOptions, config_path: str | None) -> SubmitOptions:
    """The options an Azure job keeps: its deployment and, from the model's config entry, endpoint,
    api-version and key variable (explicit options win)."""
    from tokenomy.config import load_config
    from tokenomy.providers.registry import resolve_model

    spec = resolve_model(model, load_config(config_path).model_specs() if config_path else None)
    azure = spec.provider == "azure"
    extra = {"deployment": spec.model if azure else model, **options.extra}
    if azure and spec.api_version:
        extra.setdefault("api_version", spec.api_version)
    if azure and spec.api_key_env:
        extra.setdefault("api_key_env", spec.api_key_env)
    endpoint = options.endpoint_url or (spec.base_url if azure else None)
    return replace(options, endpoint_url=endpoint, extra=extra)


class AzureOpenAIBatchBackend(OpenAIBatchBackend):
    """Files + Batches on an Azure OpenAI resource."""

    name = "azure"
    label = "Azure OpenAI"
    endpoint = ENDPOINT
    endpoint_env = "AZURE_OPENAI_ENDPOINT"

    def _client(self):
        from tokenomy.providers.azure_provider import azure_client

        extra = self.options.extra
        return azure_client(
            self.options.endpoint_url, extra.get("api_version"), extra.get("api_key_env"), extra.get("api_key")
        )

    def line_model(self, model: str) -> str:
        return str(self.options.extra.get("deployment") or model)
