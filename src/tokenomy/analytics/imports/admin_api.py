"""Reading a provider's admin usage/cost API page by page, or the same pages saved to a file.

Both OpenAI and Anthropic answer `{"data": [bucket, ...], "has_more": bool, "next_page": cursor}` and take the
cursor back as the `page` query parameter. A saved export is one such page, a list of pages, or one page per
line (what `curl ... >> usage.jsonl` leaves).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenomy.analytics.imports.common import ImportResult
from tokenomy.errors import ConfigError, read_utf8

MAX_PAGES = 1000  # a cursor that never ends must not loop forever
TIMEOUT_S = 60


def admin_key(env_var: str, what: str) -> str:
    key = os.environ.get(env_var)
    if not key:
        raise ConfigError(
            f"{env_var} is not set; {what} needs an admin API key in it (or pass saved exports as FILE arguments)"
        )
    return key


def fetch_pages(url: str, params: list[tuple[str, str]], headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of one report, following `next_page` while `has_more`."""
    import httpx

    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(timeout=TIMEOUT_S) as client:
        for _ in range(MAX_PAGES):
            query: list[tuple[str, Any]] = params + ([("page", cursor)] if cursor else [])
            try:
                response = client.get(url, params=query, headers=headers)
            except httpx.HTTPError as exc:
                raise ConfigError(f"{url}: cannot reach the API ({exc}); check --base-url and the network") from None
            if response.status_code != 200:
                raise ConfigError(
                    f"{url}: HTTP {response.status_code} {response.text[:300]!r}; check the admin key and its access"
                )
            try:
                page = response.json()
            except ValueError:
                raise ConfigError(f"{url}: the answer is not JSON ({response.text[:200]!r})") from None
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise ConfigError(f"{url}: the answer has no `data` list; is this the usage/cost endpoint?")
            pages.append(page)
            cursor = page.get("next_page")
            if not page.get("has_more") or not cursor:
                return pages
    raise ConfigError(f"{url}: more than {MAX_PAGES} pages; narrow --since/--until")


def read_pages(path: str | Path) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(place, page) for every page in a saved export (one JSON page, a JSON list of pages, or JSON lines), and a
    problem for every line or item that is not a page: the good pages still import. A file with no page at all is
    the wrong file, an error."""
    path = Path(path)
    text = read_utf8(path, "saved API pages as JSON")
    problems = []
    try:
        docs: list[tuple[str, Any]] = [(str(path), json.loads(text))]
    except json.JSONDecodeError:
        docs = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    docs.append((f"{path}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    problems.append(f"{path}:{number}: not JSON ({exc.msg}); expected saved API pages")
    pages = []
    for place, doc in docs:
        items = doc if isinstance(doc, list) else [doc]
        for index, page in enumerate(items):
            where = f"{place}[{index}]" if isinstance(doc, list) else place
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                problems.append(f"{where}: not a usage/cost API page (an object with a `data` list of buckets)")
                continue
            pages.append((where, page))
    if problems and not pages:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    return pages, problems


def buckets(pages: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """(place, bucket) for every bucket of every page."""
    out = []
    for place, page in pages:
        for index, bucket in enumerate(page["data"]):
            if isinstance(bucket, dict):
                out.append((f"{place}: data[{index}]", bucket))
    return out


def import_saved(
    paths: list[str | Path], importer: Callable[[list[tuple[str, dict[str, Any]]], str], ImportResult]
) -> ImportResult:
    """Saved exports through `importer` (the OpenAI or Anthropic page reader): the files' bad lines are reported
    first, then the bad buckets, and the good pages import."""
    pages, problems = [], []
    for path in paths:
        read, bad = read_pages(path)
        pages += read
        problems += bad
    result = importer(pages, ", ".join(str(p) for p in paths))
    result.problems[:0] = problems
    return result
