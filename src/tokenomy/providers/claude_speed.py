"""Which Claude models Anthropic's Messages API runs in fast mode (`speed: "fast"`: the same model at up to 2.5 times
the output tokens per second, billed at its own, higher prices), which of them need the `fast-mode-2026-02-01` beta
header for it, and why the others are refused, naming the model and the fix, before any call is made.

Anthropic's fast-mode page (https://platform.claude.com/docs/en/build-with-claude/fast-mode, read 2026-12-06) lists
Claude Fable 5.2, Mythos 5.2 and Opus 5.5 (available), Opus 5 (research preview, beta header) and Opus 4.8
(deprecated, beta header; removed on 2026-11-30, after which the API refuses it). Opus 4.6 and 4.7 had it too, and
lost it (4.7's was removed on 2026-07-24). Their prices are the catalog's `fast_mode` service tier
(pricing/data/anthropic.yaml), which the recorder prices a call at when its answer's usage says `speed: "fast"`.
"""

from __future__ import annotations

from tokenomy.providers.claude_effort import claude_version

FAST_MODE_BETA = "fast-mode-2026-02-01"
# (family, (major, minor)) -> whether the request needs FAST_MODE_BETA in its anthropic-beta header.
_FAST = {
    ("fable", (5, 2)): False,
    ("mythos", (5, 2)): False,
    ("opus", (5, 5)): False,
    ("opus", (5, 0)): True,
}
# Models whose fast mode Anthropic removed: asking for it is an API error, refused here with the date and the fix.
_REMOVED = {("opus", (4, 8)): "2026-11-30", ("opus", (4, 7)): "2026-07-24"}
FAST_MODELS = "Claude Fable 5.2, Mythos 5.2, Opus 5.5 and Opus 5"


def needs_fast_beta(model: str) -> bool | None:
    """Whether `speed: "fast"` on `model` needs the fast-mode beta header; None for a model without fast mode."""
    found = claude_version(model)
    return _FAST.get(found) if found is not None else None


def no_fast_mode(model: str) -> str:
    """Why `model` cannot be asked for fast mode, and the fix."""
    found = claude_version(model)
    removed = _REMOVED.get(found) if found is not None else None
    had = f"had fast mode until Anthropic removed it on {removed}" if removed else "has no fast mode"
    return (
        f'{had} (Anthropic runs `speed: "fast"` on {FAST_MODELS} only); route the request to one of those, or '
        'remove speed or send "standard"'
    )
