"""A Gemini cachedContents PATCH read as Gemini reads it, for the gateway's own caches and the emulator's: only a
cache's expiration (`ttl` or `expireTime`) can be updated, and under an `updateMask` (comma-separated field paths,
snake_case or camelCase) only the fields it names are read from the body, as a field mask means. Anything refused is
a ValueError naming the field as the caller wrote it, which each caller answers as its own 400.
"""

from __future__ import annotations

from typing import Any

from tokenomy.providers.gemini_fields import snake

EXPIRATION = ("ttl", "expireTime")  # a cache's expiration, in its two forms: all of a cache an update changes
_UPDATABLE = {snake(name) for name in EXPIRATION}


def masked_update(body: dict[str, Any], mask: str | None) -> dict[str, Any]:
    """The fields of update `body` the update reads: without a mask each field sent; with one, those it names (the
    rest are left as they are, not refused), a mask naming a field that cannot be updated or one the body does not
    set being refused. Whether the fields read are all updatable is the caller's check, as without a mask."""
    named = [path.strip() for path in (mask or "").split(",") if path.strip()]
    for path in named:
        if snake(path) not in _UPDATABLE:
            raise ValueError(f"updateMask: {path} cannot be updated; only the expiration (ttl or expireTime) can")
    if not named:
        return body
    wanted = {snake(path) for path in named}
    read = {key: value for key, value in body.items() if snake(key) in wanted}
    if all(value is None for value in read.values()):
        raise ValueError(f"update: the updateMask names {', '.join(named)}, which the body does not set")
    return read
