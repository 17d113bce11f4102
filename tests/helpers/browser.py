"""Playwright helpers for the dashboard and console tests."""

from __future__ import annotations


def _watch_requests(page, allowed_prefix: str) -> list[str]:
    """Record every request; anything not under allowed_prefix (a CDN, say) is aborted and reported."""
    outside: list[str] = []

    def route(r):
        if r.request.url.startswith(allowed_prefix):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return outside


def _wait_renders(page, n: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.renders || 0) >= {n}", timeout=30_000)
