"""Cloud Storage for Vertex AI batch jobs: upload, list and download objects through the GCS JSON API.

A few httpx calls rather than the `google-cloud-storage` package: the batch backend needs three
operations. The endpoint is `https://storage.googleapis.com` unless an override is given (the
`--gcs-endpoint-url` option, else STORAGE_EMULATOR_HOST, the variable Google's own clients honour).
Credentials are Application Default Credentials (the ones the google-genai SDK uses for Vertex AI);
a loopback endpoint (`tokenomy emulate gemini`) takes a placeholder token instead.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

from tokenomy.errors import ConfigError, ProviderError

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


def split_gs_uri(uri: str, what: str = "--gcs-uri") -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> ("bucket", "some/prefix") (no leading or trailing slash)."""
    if not uri.startswith("gs://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"{what} {uri!r}: give a Cloud Storage location such as gs://my-bucket/tokenomy-batch")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def storage_endpoint(explicit: str | None) -> str:
    endpoint = explicit or os.environ.get("STORAGE_EMULATOR_HOST") or DEFAULT_ENDPOINT
    if "://" not in endpoint:  # STORAGE_EMULATOR_HOST is often host:port
        endpoint = f"http://{endpoint}"
    return endpoint.rstrip("/")


class CloudStorage:
    """One endpoint's objects; every failure is a ProviderError naming the object and the status."""

    def __init__(self, endpoint: str | None = None, timeout: float = 120.0) -> None:
        from tokenomy.providers.base import is_loopback

        self.endpoint = storage_endpoint(endpoint)
        self._local = is_loopback(self.endpoint)
        self._credentials: Any = None
        self.http = httpx.Client(timeout=timeout)

    def _headers(self) -> dict[str, str]:
        if self._local:
            return {"Authorization": "Bearer tokenomy-local"}  # an emulator accepts any token
        if self._credentials is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                self._credentials, _ = google.auth.default(scopes=[SCOPE])
            except DefaultCredentialsError as exc:
                raise ConfigError(
                    f"no Google Cloud credentials for Cloud Storage: {exc} (run `gcloud auth application-default "
                    "login` or set GOOGLE_APPLICATION_CREDENTIALS)"
                ) from None
        if not self._credentials.valid:
            import google.auth.transport.requests

            self._credentials.refresh(google.auth.transport.requests.Request())
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _send(
        self, what: str, method: str, url: str, extra_headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self.http.request(method, url, headers={**self._headers(), **(extra_headers or {})}, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(f"Cloud Storage {what}: cannot reach {self.endpoint}: {exc}", "server_error") from None
        if response.status_code >= 400:
            kind = (
                "throttled"
                if response.status_code == 429
                else ("client_error" if response.status_code < 500 else "server_error")
            )
            raise ProviderError(
                f"Cloud Storage {what} failed ({response.status_code}): {response.text[:300]}",
                kind,
                status=response.status_code,
            )
        return response

    def upload(self, bucket: str, name: str, data: bytes, content_type: str = "application/jsonl") -> None:
        self._send(
            f"upload of gs://{bucket}/{name}",
            "POST",
            f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
            params={"uploadType": "media", "name": name},
            content=data,
            extra_headers={"Content-Type": content_type},
        )

    def list(self, bucket: str, prefix: str) -> list[str]:
        """Every object name under `prefix`, across pages."""
        names: list[str] = []
        token: str | None = None
        while True:
            params = {"prefix": prefix, **({"pageToken": token} if token else {})}
            page = self._send(
                f"list of gs://{bucket}/{prefix}",
                "GET",
                f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o",
                params=params,
            ).json()
            names += [str(item["name"]) for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return names

    def download(self, bucket: str, name: str) -> bytes:
        return self._send(
            f"download of gs://{bucket}/{name}",
            "GET",
            f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
            params={"alt": "media"},
        ).content

    def close(self) -> None:
        self.http.close()
