"""OpenAI's organization Usage/Costs API and Anthropic's Admin usage/cost reports on 127.0.0.1, answering with
the documented page shapes: one bucket per page, `has_more` / `next_page`, the cursor taken back as `page`.

The server checks the admin key header and records every request, so a test sees the pagination and the
query (bucket width, group_by) the importer sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

DAY1, DAY2 = 1_763_942_400, 1_764_028_800  # 2025-11-24 and -25, 00:00 UTC
DAY = 86_400


def _bucket(start: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "bucket", "start_time": start, "end_time": start + DAY, "results": results}


def _usage(model: str, batch: bool, input_tokens: int, cached: int, output: int, project: str) -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result", "input_tokens": input_tokens,
        "input_cached_tokens": cached, "output_tokens": output, "input_audio_tokens": 0, "output_audio_tokens": 0,
        "num_model_requests": 7, "project_id": project, "user_id": None, "api_key_id": None, "model": model,
        "batch": batch,
    }  # fmt: skip


def _cost(value: str, line_item: str, project: str) -> dict[str, Any]:
    return {"object": "organization.costs.result", "amount": {"value": float(value), "currency": "usd"},
            "line_item": line_item, "project_id": project}  # fmt: skip


OPENAI_USAGE = [
    _bucket(DAY1, [_usage("gpt-4o-mini-2024-07-18", False, 10_000, 4_000, 2_000, "proj_a"),
                   _usage("gpt-4o-mini-2024-07-18", True, 5_000, 0, 1_000, "proj_a")]),
    _bucket(DAY2, [_usage("gpt-4o-2024-08-06", False, 3_000, 1_000, 500, "proj_b")]),
]  # fmt: skip
OPENAI_COSTS = [
    _bucket(DAY1, [_cost("0.0009", "gpt-4o-mini-2024-07-18, input", "proj_a"),
                   _cost("0.0003", "gpt-4o-mini-2024-07-18, cached input", "proj_a"),
                   _cost("0.0012", "gpt-4o-mini-2024-07-18, output", "proj_a"),
                   _cost("0.000375", "gpt-4o-mini-2024-07-18, input (batch)", "proj_a"),
                   _cost("0.0003", "gpt-4o-mini-2024-07-18, output (batch)", "proj_a"),
                   _cost("0.025", "web search tool calls", "proj_a")]),
    _bucket(DAY2, [_cost("0.005", "gpt-4o-2024-08-06, input", "proj_b"),
                   _cost("0.00125", "gpt-4o-2024-08-06, cached input", "proj_b"),
                   _cost("0.005", "gpt-4o-2024-08-06, output", "proj_b")]),
]  # fmt: skip


def _iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _abucket(start: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"starting_at": _iso(start), "ending_at": _iso(start + DAY), "results": results}


def _ausage(model: str, tier: str, uncached: int, w5m: int, w1h: int, read: int, output: int) -> dict[str, Any]:
    return {
        "uncached_input_tokens": uncached,
        "cache_creation": {"ephemeral_5m_input_tokens": w5m, "ephemeral_1h_input_tokens": w1h},
        "cache_read_input_tokens": read, "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0}, "api_key_id": None, "workspace_id": "wrkspc_1",
        "model": model, "service_tier": tier, "context_window": "0-200k",
    }  # fmt: skip


def _acost(cents: str, model: str | None, tier: str | None, token_type: str | None, cost_type: str = "tokens"):
    description = f"{model} {token_type}" if model else "Web search"
    return {"currency": "USD", "amount": cents, "workspace_id": "wrkspc_1", "description": description,
            "cost_type": cost_type, "context_window": "0-200k" if model else None, "model": model,
            "service_tier": tier, "token_type": token_type}  # fmt: skip


ANTHROPIC_USAGE = [
    _abucket(DAY1, [_ausage("claude-3-5-haiku-20241022", "standard", 20_000, 3_000, 1_000, 50_000, 4_000),
                    _ausage("claude-3-5-haiku-20241022", "batch", 8_000, 0, 0, 0, 2_000)]),
    _abucket(DAY2, [_ausage("claude-sonnet-4-20250514", "standard", 1_000, 0, 0, 0, 100)]),
]  # fmt: skip
ANTHROPIC_COSTS = [
    _abucket(DAY1, [_acost("1.6", "claude-3-5-haiku-20241022", "standard", "uncached_input_tokens"),
                    _acost("0.3", "claude-3-5-haiku-20241022", "standard", "cache_creation.ephemeral_5m_input_tokens"),
                    _acost("0.16", "claude-3-5-haiku-20241022", "standard", "cache_creation.ephemeral_1h_input_tokens"),
                    _acost("0.4", "claude-3-5-haiku-20241022", "standard", "cache_read_input_tokens"),
                    _acost("1.6", "claude-3-5-haiku-20241022", "standard", "output_tokens"),
                    _acost("0.32", "claude-3-5-haiku-20241022", "batch", "uncached_input_tokens"),
                    _acost("0.4", "claude-3-5-haiku-20241022", "batch", "output_tokens"),
                    _acost("1.0", None, None, None, "web_search")]),
    _abucket(DAY2, [_acost("0.3", "claude-sonnet-4-20250514", "standard", "uncached_input_tokens"),
                    _acost("0.15", "claude-sonnet-4-20250514", "standard", "output_tokens")]),
]  # fmt: skip

ROUTES = {
    "/v1/organization/usage/completions": ("openai", OPENAI_USAGE),
    "/v1/organization/costs": ("openai", OPENAI_COSTS),
    "/v1/organizations/usage_report/messages": ("anthropic", ANTHROPIC_USAGE),
    "/v1/organizations/cost_report": ("anthropic", ANTHROPIC_COSTS),
}
KEYS = {"openai": "sk-admin-test", "anthropic": "sk-ant-admin-test"}


class BillingServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                server.requests.append((url.path, query))
                if url.path not in ROUTES:
                    return self._send(404, {"error": {"message": f"no route {url.path}"}})
                vendor, buckets = ROUTES[url.path]
                sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ") if vendor == "openai" \
                    else self.headers.get("x-api-key")  # fmt: skip
                if sent != KEYS[vendor]:
                    return self._send(401, {"error": {"message": "invalid admin key"}})
                index = int(query.get("page", ["0"])[0].removeprefix("cursor-"))
                more = index + 1 < len(buckets)
                page = {
                    "data": [buckets[index]],
                    "has_more": more,
                    "next_page": f"cursor-{index + 1}" if more else None,
                }
                if vendor == "openai":
                    page["object"] = "page"
                return self._send(200, page)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@contextmanager
def billing_server() -> Iterator[BillingServer]:
    server = BillingServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(10)


def saved_pages(buckets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pages the server answers, as a saved export (a JSON list of pages)."""
    return [{"data": [b], "has_more": i + 1 < len(buckets), "next_page": None} for i, b in enumerate(buckets)]
