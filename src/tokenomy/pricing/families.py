"""Curated model lines and release dates, for "is there a newer or cheaper model of the same line?".

The price catalog's `family` is one generation ("claude-3.5-haiku"); a review needs the line a
generation belongs to ("claude-haiku") and when it was released, to tell an upgrade (same line,
newer) from a sideways move. Matched on the model id with any Bedrock profile prefix or ARN removed,
first pattern wins. Release dates are the providers' announcement dates (ids carry them for most Claude
models); only their order within a line matters for "newer". A catalog model missing here gets no candidates
(the review says so): add a line when the catalog gains a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from tokenomy.pricing.catalog import split_inference_profile


@dataclass(frozen=True)
class ModelLine:
    """Which line a model belongs to (the vendor's size/tier), its vendor and its release date."""

    vendor: str
    line: str
    released: date
    kind: str = "chat"  # "embedding": a candidate only for another embedding model (it answers no prompt)


# (pattern on the base model id, vendor, line, release date). More specific patterns first.
_LINES: tuple[tuple[str, str, str, date], ...] = (
    (r"claude-3-haiku", "anthropic", "claude-haiku", date(2024, 3, 7)),
    (r"claude-3-5-haiku", "anthropic", "claude-haiku", date(2024, 10, 22)),
    (r"claude-haiku-4-5", "anthropic", "claude-haiku", date(2025, 10, 1)),
    (r"claude-haiku-5-5", "anthropic", "claude-haiku", date(2026, 10, 7)),
    (r"claude-3-5-sonnet-20240620", "anthropic", "claude-sonnet", date(2024, 6, 20)),
    (r"claude-3-5-sonnet", "anthropic", "claude-sonnet", date(2024, 10, 22)),
    (r"claude-3-7-sonnet", "anthropic", "claude-sonnet", date(2025, 2, 19)),
    (r"claude-sonnet-5-5", "anthropic", "claude-sonnet", date(2026, 9, 28)),
    (r"claude-sonnet-5(?!-[1-9](?!\d))", "anthropic", "claude-sonnet", date(2026, 6, 30)),
    (r"claude-sonnet-4-6", "anthropic", "claude-sonnet", date(2026, 2, 17)),
    (r"claude-sonnet-4-5", "anthropic", "claude-sonnet", date(2025, 9, 29)),
    (r"claude-sonnet-4(?!-[1-9](?!\d))", "anthropic", "claude-sonnet", date(2025, 5, 14)),
    (r"claude-3-opus", "anthropic", "claude-opus", date(2024, 2, 29)),
    (r"claude-opus-5-5", "anthropic", "claude-opus", date(2026, 9, 22)),
    (r"claude-opus-5(?!-[1-9](?!\d))", "anthropic", "claude-opus", date(2026, 7, 24)),
    (r"claude-opus-4-8", "anthropic", "claude-opus", date(2026, 5, 28)),
    (r"claude-opus-4-7", "anthropic", "claude-opus", date(2026, 4, 16)),
    (r"claude-opus-4-6", "anthropic", "claude-opus", date(2026, 2, 5)),
    (r"claude-opus-4-5", "anthropic", "claude-opus", date(2025, 11, 24)),
    (r"claude-opus-4-1", "anthropic", "claude-opus", date(2025, 8, 5)),
    (r"claude-opus-4(?!-[1-9](?!\d))", "anthropic", "claude-opus", date(2025, 5, 14)),
    # Fable: above Opus (its own line: a move from Opus to Fable is not an upgrade of the same line).
    (r"claude-fable-5-2", "anthropic", "claude-fable", date(2026, 11, 9)),
    (r"claude-fable-5-1", "anthropic", "claude-fable", date(2026, 9, 1)),
    (r"claude-fable-5(?!-[1-9](?!\d))", "anthropic", "claude-fable", date(2026, 6, 9)),
    (r"claude-v2", "anthropic", "claude-2", date(2023, 11, 21)),
    (r"claude-instant", "anthropic", "claude-instant", date(2023, 8, 9)),
    (r"nova-micro", "amazon", "nova-micro", date(2024, 12, 3)),
    (r"nova-lite", "amazon", "nova-lite", date(2024, 12, 3)),
    (r"nova-pro", "amazon", "nova-pro", date(2024, 12, 3)),
    (r"nova-premier", "amazon", "nova-premier", date(2025, 4, 30)),
    (r"titan-text-lite", "amazon", "titan-text-lite", date(2023, 11, 29)),
    (r"titan-text-express", "amazon", "titan-text-express", date(2023, 11, 29)),
    (r"(?:^|\.)llama4-maverick", "meta", "llama-maverick", date(2025, 4, 5)),
    (r"(?:^|\.)llama4-scout", "meta", "llama-scout", date(2025, 4, 5)),
    (r"(?:^|\.)llama3-2-1b", "meta", "llama-1b", date(2024, 9, 25)),
    (r"(?:^|\.)llama3-2-3b", "meta", "llama-3b", date(2024, 9, 25)),
    (r"(?:^|\.)llama3-2-11b", "meta", "llama-11b", date(2024, 9, 25)),
    (r"(?:^|\.)llama3-2-90b", "meta", "llama-90b", date(2024, 9, 25)),
    (r"(?:^|\.)llama3-3-70b", "meta", "llama-70b", date(2024, 12, 6)),
    (r"(?:^|\.)llama3-1-8b", "meta", "llama-8b", date(2024, 7, 23)),
    (r"(?:^|\.)llama3-8b", "meta", "llama-8b", date(2024, 4, 18)),
    (r"(?:^|\.)llama3-1-70b", "meta", "llama-70b", date(2024, 7, 23)),
    (r"(?:^|\.)llama3-70b", "meta", "llama-70b", date(2024, 4, 18)),
    (r"mistral-large-2402", "mistral", "mistral-large", date(2024, 2, 26)),
    (r"mistral-large-2407", "mistral", "mistral-large", date(2024, 7, 24)),
    (r"mistral-small-2402", "mistral", "mistral-small", date(2024, 2, 26)),
    (r"pixtral-large-2502", "mistral", "pixtral-large", date(2025, 2, 1)),
    (r"mixtral-8x7b", "mistral", "mixtral-8x7b", date(2023, 12, 11)),
    (r"mistral-7b", "mistral", "mistral-7b", date(2023, 9, 27)),
    (r"deepseek\.r1", "deepseek", "deepseek-r1", date(2025, 1, 20)),
    (r"qwen3-coder-480b", "qwen", "qwen3-coder-480b", date(2025, 7, 22)),
    (r"qwen3-coder-30b", "qwen", "qwen3-coder-30b", date(2025, 7, 22)),
    (r"qwen3-32b", "qwen", "qwen3-32b", date(2025, 4, 29)),
    (r"gpt-oss-120b", "openai", "gpt-oss-120b", date(2025, 8, 5)),
    (r"gpt-oss-20b", "openai", "gpt-oss-20b", date(2025, 8, 5)),
    (r"^gemini-2-0-flash-lite", "google", "gemini-flash-lite", date(2025, 2, 25)),
    (r"^gemini-2-5-flash-lite", "google", "gemini-flash-lite", date(2025, 7, 22)),
    (r"^gemini-2-0-flash", "google", "gemini-flash", date(2025, 2, 5)),
    (r"^gemini-2-5-flash", "google", "gemini-flash", date(2025, 6, 17)),
    (r"^gemini-2-5-pro", "google", "gemini-pro", date(2025, 6, 17)),
    # Gemini 3.x Flash (the text models: not the -tts/-live/-image variants). Gemini 3.7 Flash, 3.1 Flash-Lite and the
    # 3.x Pro previews are left out: no release date found for them.
    (r"^gemini-3-5-flash-lite", "google", "gemini-flash-lite", date(2026, 7, 21)),
    (r"^gemini-3-5-flash(?!-(lite|tts|live|image))", "google", "gemini-flash", date(2026, 5, 19)),
    (r"^gemini-3-6-flash(?!-(lite|tts|live|image))", "google", "gemini-flash", date(2026, 7, 21)),
    (r"^gemini-3-8-flash(?!-(lite|tts|live|image))", "google", "gemini-flash", date(2026, 9, 2)),
    # Gemini 4: Hydrogen < Neon < Carbon, each a line of its own (release dates: Google's announcements).
    (r"^gemini-4-hydrogen", "google", "gemini-hydrogen", date(2026, 11, 12)),
    (r"^gemini-4-neon", "google", "gemini-neon", date(2026, 11, 18)),
    (r"^gemini-4-carbon", "google", "gemini-carbon", date(2026, 11, 10)),
    (r"^o1", "openai", "o", date(2024, 12, 17)),
    (r"^o3-mini", "openai", "o-mini", date(2025, 1, 31)),
    (r"^o4-mini", "openai", "o-mini", date(2025, 4, 16)),
    (r"^o3", "openai", "o", date(2025, 4, 16)),
    (r"^gpt-4-1106|^gpt-4-turbo", "openai", "gpt", date(2023, 11, 6)),
    (r"^gpt-4o-mini", "openai", "gpt-mini", date(2024, 7, 18)),
    (r"^gpt-4o", "openai", "gpt", date(2024, 5, 13)),
    (r"^gpt-4-1-nano", "openai", "gpt-nano", date(2025, 4, 14)),
    (r"^gpt-4-1-mini", "openai", "gpt-mini", date(2025, 4, 14)),
    (r"^gpt-4-1(?!\d)", "openai", "gpt", date(2025, 4, 14)),
    # Each pattern names one version: "^gpt-5" also matched gpt-5.5 and gpt-5.6-luna, dating them 2025-08-07, so a
    # review called the older GPT-5.2 their upgrade. Since GPT-5.6 OpenAI sells four tiers, Luna < Terra < Sol < Astra;
    # Sol is the flagship the `gpt` line continues in (`gpt-5.6` is an alias of gpt-5.6-sol), the others are lines of
    # their own. The -cyber and -rosalind models (by verification only) and GPT-5.3 (no date found) are left out.
    (r"^gpt-6-2-sol", "openai", "gpt", date(2026, 11, 17)),
    (r"^gpt-6-2-astra", "openai", "gpt-astra", date(2026, 11, 17)),
    (r"^gpt-6-1-sol", "openai", "gpt", date(2026, 9, 29)),
    (r"^gpt-6-sol", "openai", "gpt", date(2026, 9, 22)),
    (r"^gpt-6-astra", "openai", "gpt-astra", date(2026, 9, 3)),
    (r"^gpt-6-1-terra", "openai", "gpt-terra", date(2026, 10, 26)),
    (r"^gpt-6-luna", "openai", "gpt-luna", date(2026, 9, 22)),
    (r"^gpt-5-6-terra", "openai", "gpt-terra", date(2026, 7, 9)),
    (r"^gpt-5-6-luna", "openai", "gpt-luna", date(2026, 7, 9)),
    (r"^gpt-5-6(?!\d|-cyber)", "openai", "gpt", date(2026, 7, 9)),
    (r"^gpt-5-5(?!\d|-cyber)", "openai", "gpt", date(2026, 4, 23)),
    (r"^gpt-5-4-nano", "openai", "gpt-nano", date(2026, 3, 17)),
    (r"^gpt-5-4-mini", "openai", "gpt-mini", date(2026, 3, 17)),
    (r"^gpt-5-4(?!\d|-image)", "openai", "gpt", date(2026, 3, 5)),
    (r"^gpt-5-2(?!\d)", "openai", "gpt", date(2025, 12, 11)),
    (r"^gpt-5-1(?!\d)", "openai", "gpt", date(2025, 11, 12)),
    (r"^gpt-5-nano", "openai", "gpt-nano", date(2025, 8, 7)),
    (r"^gpt-5-mini", "openai", "gpt-mini", date(2025, 8, 7)),
    (r"^gpt-5(?!\d|-[1-9](?!\d))", "openai", "gpt", date(2025, 8, 7)),
)
# Embedding models: moving an index to a newer one means embedding every document again, which the review's
# figures (the traffic re-priced) leave out.
_EMBEDDING_LINES: tuple[tuple[str, str, str, date], ...] = (
    (r"^text-embedding-ada-002", "openai", "text-embedding", date(2022, 12, 15)),
    (r"^text-embedding-3-small", "openai", "text-embedding", date(2024, 1, 25)),
    (r"^text-embedding-3-large", "openai", "text-embedding-large", date(2024, 1, 25)),
    (r"^amazon\.titan-embed-text-v2", "amazon", "titan-embed-text", date(2024, 4, 30)),
    (r"^cohere\.embed-english-v3", "cohere", "cohere-embed", date(2023, 11, 2)),
    (r"^cohere\.embed-multilingual-v3", "cohere", "cohere-embed", date(2023, 11, 2)),
    (r"^cohere\.embed-v4", "cohere", "cohere-embed", date(2025, 4, 15)),
)
_VERSION_DOT = re.compile(r"(?<=\d)\.(?=\d)")
_COMPILED = tuple(
    (re.compile(p), ModelLine(vendor, line, released, kind))
    for lines, kind in ((_LINES, "chat"), (_EMBEDDING_LINES, "embedding"))
    for p, vendor, line, released in lines
)


def model_line(model: str) -> ModelLine | None:
    """The line of a model id (Bedrock profile prefixes and ARNs resolved), or None if not curated."""
    base, _ = split_inference_profile(model)
    # One spelling of a version: "claude-opus-5.5" and "gpt-5-5" are ids too (genai-prices matches them), and a
    # pattern for the major version alone took them for it. The patterns are written with dashes.
    base = _VERSION_DOT.sub("-", base)
    for pattern, line in _COMPILED:
        if pattern.search(base):
            return line
    return None
