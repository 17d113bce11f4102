"""OpenAI's embeddings request (`POST /v1/embeddings`), checked before anything is sent or reserved.

The body is forwarded as the caller sent it, with only `model` replaced by the route's model, so every field is
one the gateway knows it may forward; any other is refused by name (the gateway drops nothing silently). One field
is the gateway's own, not OpenAI's: `input_type` (search_document, search_query, classification, clustering), which
Cohere Embed models on Bedrock take and OpenAI's request has no place for; a route to any other model refuses it.
The shape of `input` is checked here, where a mistake can be named by its place (`input[2][0]`), rather than answered by
the upstream as a bare 400 or, worse, embedded as something the caller did not mean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokenomy.gateway.exact_json import dumps
from tokenomy.gateway.openai_shapes import RequestError
from tokenomy.providers.bedrock_embeddings import INPUT_TYPES  # Cohere Embed's
from tokenomy.token_estimate import bound_text_tokens, estimate_text_tokens

# OpenAI's embeddings request, every field of it (https://platform.openai.com/docs/api-reference/embeddings/create).
FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
# The gateway's extension fields, taken only by the models named in their refusals (embeddings_routes).
EXTENSIONS = ("input_type",)
OPTIONAL = ("encoding_format", "dimensions", "user", *EXTENSIONS)
ENCODINGS = ("float", "base64")
_SHAPES = "a string, a list of strings, a list of token ids (integers) or a list of token-id lists"
_TOKEN_IDS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
# The body is read by the handler (to name a wrong place as `input[2][0]`), so the OpenAPI document's schema is
# declared here by hand.
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["model", "input"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": "a route or model this gateway serves"},
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                _TOKEN_IDS,
                {"type": "array", "items": _TOKEN_IDS, "minItems": 1},
            ]
        },
        "encoding_format": {"type": "string", "enum": list(ENCODINGS), "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
        "input_type": {
            "type": "string",
            "enum": list(INPUT_TYPES),
            "description": "Cohere Embed on Bedrock only (not OpenAI's): what the texts are embedded for; "
            "default search_document",
        },
    },
}


@dataclass(frozen=True)
class EmbeddingsRequest:
    """A checked request: the body as sent, and the inputs it embeds (one vector each)."""

    body: dict[str, Any]
    model: str
    items: tuple[str | tuple[int, ...], ...]

    def forwarded(self, model: str) -> dict[str, Any]:
        """The body the upstream gets: the caller's, with the route's model in place of the route's name."""
        return {**self.body, "model": model}

    def estimated_tokens(self) -> int:
        """Input tokens, for the rate limiter before the upstream counts them."""
        return estimated_tokens(self.items)

    def bound_tokens(self) -> int:
        """An upper bound of its input tokens, for the budget reservation: a text at `token_estimate.bound_length`
        (4,000 digits are 1,000 tokens estimated and up to 4,000 billed, and concurrent calls reserved at the
        estimate overspent the budget by the gap), a token list exactly."""
        return sum(bound_text_tokens(item) if isinstance(item, str) else len(item) for item in self.items)

    def fingerprint(self) -> str:
        """A stable hash of what is embedded, so repeated inputs (a cache's savings) can be found in the ledger
        without storing them."""
        return hashlib.sha256(dumps(self.body["input"])).hexdigest()[:32]

    def text(self) -> str:
        """The inputs as text, for a ledger that stores prompts (token lists as their ids)."""
        return "\n".join(item if isinstance(item, str) else " ".join(map(str, item)) for item in self.items)


def estimated_tokens(items: Iterable[str | tuple[int, ...]]) -> int:
    """The input tokens of `items` before the upstream counts them: a text at ~4 characters a token (as a chat
    prompt is estimated, a CJK character ~1: token_estimate), a token list exactly."""
    return sum(estimate_text_tokens(item) if isinstance(item, str) else len(item) for item in items)


def parse_embeddings_request(body: Any) -> EmbeddingsRequest:
    """The checked request; a RequestError naming the first field (or place in `input`) that is wrong."""
    if not isinstance(body, dict):
        raise RequestError("body", f"expected a JSON object such as {{'model': ..., 'input': ...}}, not {_kind(body)}")
    for name in body:
        if name not in FIELDS and name not in EXTENSIONS:
            raise RequestError(
                name,
                f"not a field of OpenAI's embeddings request ({', '.join(FIELDS)}); the gateway forwards no field it "
                "does not know: remove it",
            )
    # null is "not given" for an optional field, in OpenAI's API as on the gateway's chat route: clients that
    # serialize every field of their request type send it for those they did not set.
    body = {name: value for name, value in body.items() if value is not None or name not in OPTIONAL}
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model", "required: the name of a route or model this gateway serves (GET /v1/models)")
    if "input" not in body:
        raise RequestError("input", f"required: {_SHAPES}")
    items = _items(body["input"])
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        raise RequestError("encoding_format", f"must be {' or '.join(ENCODINGS)}, not {encoding!r}")
    dimensions = body.get("dimensions", 1)
    if type(dimensions) is not int or dimensions < 1:
        raise RequestError("dimensions", f"must be a positive integer, not {dimensions!r}")
    if not isinstance(body.get("user", ""), str):
        raise RequestError("user", f"must be a string, not {_kind(body['user'])}")
    if body.get("input_type", INPUT_TYPES[0]) not in INPUT_TYPES:
        raise RequestError("input_type", f"must be one of {', '.join(INPUT_TYPES)}, not {body['input_type']!r}")
    return EmbeddingsRequest(body, model, items)


def _items(given: Any) -> tuple[str | tuple[int, ...], ...]:
    """What `input` embeds, one item per vector."""
    if isinstance(given, str):
        return (_text(given, "input"),)
    if not isinstance(given, list):
        raise RequestError("input", f"must be {_SHAPES}, not {_kind(given)}")
    if not given:
        raise RequestError("input", "is an empty list: send at least one text or token list to embed")
    first = given[0]
    if isinstance(first, str):
        for index, item in enumerate(given):
            if not isinstance(item, str):
                raise RequestError(f"input[{index}]", f"must be a string like input[0], not {_kind(item)}")
            _text(item, f"input[{index}]")
        return tuple(given)
    if _token(first):
        return (_tokens(given, "input"),)
    if isinstance(first, list):
        found = []
        for index, item in enumerate(given):
            if not isinstance(item, list):
                raise RequestError(f"input[{index}]", f"must be a list of token ids like input[0], not {_kind(item)}")
            found.append(_tokens(item, f"input[{index}]"))
        return tuple(found)
    raise RequestError("input[0]", f"must be a string, a token id or a list of token ids, not {_kind(first)}")


def _text(text: str, where: str) -> str:
    # OpenAI refuses an empty text as "'$.input' is invalid", which does not say which of a batch's texts it was.
    if not text:
        raise RequestError(where, "is an empty string: nothing to embed; remove it or send its text")
    return text


def _tokens(ids: list, where: str) -> tuple[int, ...]:
    if not ids:
        raise RequestError(where, "is an empty token list: nothing to embed")
    for index, item in enumerate(ids):
        if not _token(item):
            raise RequestError(f"{where}[{index}]", f"must be a token id (an integer >= 0), not {item!r}")
    return tuple(ids)


def _token(value: Any) -> bool:
    return type(value) is int and value >= 0  # not bool, which is an int to Python but no token id


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a number ({value!r})" if isinstance(value, (int, float)) else type(value).__name__
    )
