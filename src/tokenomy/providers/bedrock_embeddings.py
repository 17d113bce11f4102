"""OpenAI's embeddings request on Bedrock's embedding models, through InvokeModel (Bedrock has no Converse for them).

Two body families, each model's own (Bedrock user guide, "Amazon Titan Embeddings Text" and "Cohere Embed"):

- Amazon Titan Text Embeddings V2 (`amazon.titan-embed-text-v2:0`) embeds one text a call: `{"inputText",
  "dimensions", "normalize", "embeddingTypes"}` -> `{"embedding", "inputTextTokenCount"}`. A request with several
  inputs is one call per input (at most `TITAN_CONCURRENCY` at once, the answer in the inputs' order), the input
  tokens summed. `normalize` is always true: OpenAI's vectors have length 1, and callers compare them by dot product.
- Cohere Embed (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, `cohere.embed-v4:0`) embeds up to 96
  texts a call: `{"texts", "input_type", "truncate", "embedding_types"}` (v4 also `output_dimension`); a longer
  request is several calls of 96. Cohere's answer has no token count: Bedrock sends it in the
  `x-amzn-bedrock-input-token-count` header. `truncate` is always NONE, so a text too long is an error rather than
  silently cut (as OpenAI refuses one). `input_type` is required by Cohere and absent from OpenAI's request: it is
  `search_document` (what an index stores) unless the caller sends the gateway's one extension field,
  `input_type` (`search_query` for a query, `classification`, `clustering`), e.g. the openai SDK's
  `extra_body={"input_type": "search_query"}`. Any other model refuses `input_type` by name.

Every field of OpenAI's request is carried or refused by name (`refusal`): token-id inputs (Bedrock embeds text
only), a text longer than the model takes (Titan: 50,000 characters; Cohere v3: 2,048), `dimensions` a model
cannot give (Titan: 256, 512, 1024; Cohere v3: 1024; v4: 256, 512, 1024, 1536), and `user` (InvokeModel has no
field for an end-user id; attribute calls with the `x-tokenomy-tags` header instead).
`encoding_format: "base64"` is done here as OpenAI does it: the float vector as little-endian float32, base64.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.pricing.catalog import split_inference_profile

TITAN_CONCURRENCY = 8  # Titan calls in flight for one request (Bedrock's default on-demand quota is per minute)
COHERE_BATCH = 96  # texts per Cohere Embed call (Bedrock's limit)
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
DEFAULT_INPUT_TYPE = "search_document"
TOKEN_HEADER = "x-amzn-bedrock-input-token-count"
LATENCY_HEADER = "x-amzn-bedrock-invocation-latency"


@dataclass(frozen=True)
class EmbeddingModel:
    """A Bedrock embedding model: its body family, the dimensions it can give (the first is its default)."""

    family: str  # titan | cohere
    dimensions: tuple[int, ...]
    dimension_field: str | None  # the body's field for the output size, if the model takes one
    max_chars: int | None  # the longest text Bedrock takes (its body schema's maxLength), if it documents one
    # Cohere: the answer's vectors are by type (`{"float": [...]}`, `embeddings_by_type`) even when the body asks for
    # no `embedding_types` (Embed v4 does so; v3 then answers bare floats, `embeddings_floats`).
    by_type: bool = False


MODELS = {
    "amazon.titan-embed-text-v2:0": EmbeddingModel("titan", (1024, 512, 256), "dimensions", 50_000),
    "cohere.embed-english-v3": EmbeddingModel("cohere", (1024,), None, 2048),
    "cohere.embed-multilingual-v3": EmbeddingModel("cohere", (1024,), None, 2048),
    "cohere.embed-v4:0": EmbeddingModel("cohere", (1536, 1024, 512, 256), "output_dimension", None, by_type=True),
}


class EmbeddingFieldError(ValueError):
    """A field of the OpenAI request the model cannot take: `param` names it (the gateway's 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def embedding_model(model_id: str) -> EmbeddingModel | None:
    """The embedding model a Bedrock id (plain, cross-region profile or ARN) names, or None."""
    base, _ = split_inference_profile(model_id)
    return MODELS.get(base.rsplit("/", 1)[-1])


def refusal(body: dict[str, Any], model_id: str) -> EmbeddingFieldError | None:
    """What of the OpenAI request (`body`, as the gateway checked it) the model cannot take, or None."""
    model = embedding_model(model_id)
    if model is None:
        return EmbeddingFieldError(
            "model",
            f"`{model_id}` is not a Bedrock embedding model the gateway can reach: use one of {', '.join(MODELS)}",
        )
    given = body["input"]
    if not isinstance(given, str) and not all(isinstance(item, str) for item in given):
        return EmbeddingFieldError(
            "input",
            f"token ids cannot be embedded by {model_id}: Bedrock's embedding models take text only; send the texts",
        )
    if model.max_chars is not None:
        # Checked here, where the text can be named: Bedrock refuses it in the one call that carries it, under
        # that call's index, after the calls before it were answered and billed.
        for index, text in enumerate([given] if isinstance(given, str) else given):
            if len(text) > model.max_chars:
                return EmbeddingFieldError(
                    "input" if isinstance(given, str) else f"input[{index}]",
                    f"a text of {len(text)} characters; {model_id} takes at most {model.max_chars} (Bedrock "
                    "refuses a longer one, and the gateway never truncates): split it",
                )
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions not in model.dimensions:
        valid = ", ".join(map(str, sorted(model.dimensions)))
        return EmbeddingFieldError(
            "dimensions", f"{model_id} gives vectors of {valid} dimensions only, not {dimensions}: send one of these"
        )
    if body.get("user") is not None:
        return EmbeddingFieldError(
            "user",
            f"{model_id} is reached through Bedrock's InvokeModel, which has no field for an end-user id: remove "
            "`user` (to attribute the call in the ledger, send the header `x-tokenomy-tags: user=<id>`)",
        )
    if "input_type" in body and model.family != "cohere":
        return EmbeddingFieldError(
            "input_type", f"only Cohere Embed models take `input_type`; {model_id} has no such field: remove it"
        )
    return None


def texts(body: dict[str, Any]) -> list[str]:
    given = body["input"]
    return [given] if isinstance(given, str) else list(given)


def invoke_bodies(body: dict[str, Any], model_id: str) -> list[dict[str, Any]]:
    """The InvokeModel bodies that embed the request, in the inputs' order (`refusal` found nothing)."""
    model = embedding_model(model_id)
    assert model is not None
    items = texts(body)
    size = body.get("dimensions")
    if model.family == "titan":
        return [
            {
                "inputText": text,
                "dimensions": size or model.dimensions[0],
                "normalize": True,
                "embeddingTypes": ["float"],
            }
            for text in items
        ]
    bodies = []
    for start in range(0, len(items), COHERE_BATCH):
        call: dict[str, Any] = {
            "texts": items[start : start + COHERE_BATCH],
            "input_type": body.get("input_type", DEFAULT_INPUT_TYPE),
            "truncate": "NONE",
            "embedding_types": ["float"],
        }
        if size is not None and model.dimension_field:
            call[model.dimension_field] = size
        bodies.append(call)
    return bodies


def call_texts(call: dict[str, Any]) -> list[str]:
    """The texts one InvokeModel body (`invoke_bodies`) embeds."""
    return call["texts"] if "texts" in call else [call["inputText"]]


def vectors_of(answer: dict[str, Any], family: str) -> list[list[float]]:
    """The float vectors of one InvokeModel answer; a TypeError when one holds anything but numbers (it would reach
    the caller as a vector, or break its base64 encoding)."""
    if family == "titan":
        by_type = answer.get("embeddingsByType")
        vector = by_type.get("float") if isinstance(by_type, dict) else None
        vectors = [vector if vector is not None else answer["embedding"]]
    else:
        found = answer["embeddings"]
        vectors = found["float"] if isinstance(found, dict) else found  # by type (embedding_types sent), or bare
    for vector in vectors:
        if not isinstance(vector, list):
            raise TypeError("a vector is not a list of numbers")
        sum(vector)  # a TypeError for anything but numbers (a null, a string), in C: 96 x 1536 floats in ~0.6 ms
    return vectors


def tokens_of(answer: dict[str, Any], headers: dict[str, Any], family: str) -> int | None:
    """The input tokens Bedrock counted for one call: Titan's `inputTextTokenCount`, else the header."""
    counted = answer.get("inputTextTokenCount") if family == "titan" else None
    if counted is None:
        counted = {str(k).lower(): v for k, v in headers.items()}.get(TOKEN_HEADER)
    try:
        return int(counted) if counted is not None else None
    except (TypeError, ValueError):
        return None


def base64_vector(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: the vector as little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def openai_answer(vectors: list[list[float]], tokens: int | None, model: str, encoding: str) -> dict[str, Any]:
    """OpenAI's embeddings answer; no `usage` when Bedrock counted nothing (the gateway then bills its estimate)."""
    data = [
        {"object": "embedding", "index": i, "embedding": base64_vector(v) if encoding == "base64" else v}
        for i, v in enumerate(vectors)
    ]
    answer: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if tokens is not None:
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return answer


class Progress:
    """The calls of one request that Bedrock answered (their vectors and tokens, by the call's place), kept across
    the gateway's attempts: a retry sends only the others, since Bedrock billed these already (sending them again
    would pay twice, past the request's budget reservation), and the answer is put together from all of them."""

    def __init__(self) -> None:
        self.answered: dict[int, tuple[list[list[float]], int | None]] = {}

    def tokens(self) -> int:
        return sum(tokens or 0 for _, tokens in self.answered.values())


def embed(
    invoke: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]],
    body: dict[str, Any],
    model_id: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed `body` (OpenAI's request) with `invoke` (one InvokeModel call: its JSON answer and HTTP headers),
    sending only the calls an earlier attempt of the request left unanswered (`progress`).

    Titan's calls run `TITAN_CONCURRENCY` at a time, Cohere's batches one after another. When a call fails, those
    not yet started are not sent (the error counts them: `unsent_calls`), and the error carries the tokens of this
    attempt's calls that answered (`billed_tokens`): Bedrock bills them though the request failed. The answer's
    usage is the whole request's."""
    model = embedding_model(model_id)
    assert model is not None
    progress = progress if progress is not None else Progress()
    calls = invoke_bodies(body, model_id)
    pending = [index for index in range(len(calls)) if index not in progress.answered]
    unusable: dict[int, int] = {}  # this attempt's calls answered with no usable vectors: their billed tokens

    def carried(index: int) -> str:
        """The caller's inputs call `index` carries, as a refusal names them."""
        if model.family == "titan":
            return f"input[{index}]"
        first, count = index * COHERE_BATCH, len(calls[index]["texts"])
        return f"input[{first}]" if count == 1 else f"the call of input[{first}] to input[{first + count - 1}]"

    def one(index: int) -> None:
        try:
            answer, headers = invoke(calls[index])
        except ProviderError as exc:
            # A refusal of what the call carried: Bedrock names a text by its place in its own call, if at all.
            if exc.kind == "client_error" and len(calls) > 1:
                exc.args = (f"{carried(index)}: {exc}",)
            raise
        tokens = tokens_of(answer, headers, model.family)
        try:
            found = (vectors_of(answer, model.family), tokens)
        except (KeyError, TypeError, AttributeError) as exc:
            if tokens is not None:  # billed though unusable; not in `progress`, so a retry sends the call again
                unusable[index] = tokens
            raise ProviderError(
                f"Bedrock answered {model_id} with no embeddings ({type(exc).__name__}: {exc})",
                kind="server_error",
                reached=True,
            ) from exc
        progress.answered[index] = found

    try:
        if model.family == "titan" and len(pending) > 1:
            with ThreadPoolExecutor(min(TITAN_CONCURRENCY, len(pending)), thread_name_prefix="titan-embed") as pool:
                futures = [pool.submit(one, index) for index in pending]
                try:
                    for future in futures:
                        future.result()
                except BaseException as exc:
                    # Those no thread had begun are not sent; how many depends on when the first failure came.
                    unsent = sum(future.cancel() for future in futures)
                    if isinstance(exc, ProviderError):
                        exc.unsent_calls = unsent
                    raise
        else:
            for position, index in enumerate(pending):
                try:
                    one(index)
                except ProviderError as exc:
                    exc.unsent_calls = len(pending) - position - 1
                    raise
    except ProviderError as exc:
        done = [progress.answered[index][1] for index in pending if index in progress.answered]
        if done or unusable:
            exc.billed_tokens = sum(tokens or 0 for tokens in done) + sum(unusable.values())
        raise
    answers = [progress.answered[index] for index in range(len(calls))]
    vectors = [vector for found, _ in answers for vector in found]
    counts = [tokens for _, tokens in answers]
    tokens = None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
    return openai_answer(vectors, tokens, model_id, body.get("encoding_format", "float"))


def decode(raw: bytes) -> dict[str, Any]:
    """An InvokeModel answer body as JSON; a server error (reached: it was billed) when it is not."""
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        raise ProviderError(f"Bedrock's InvokeModel answer is not JSON: {exc}", "server_error", reached=True) from exc
    if not isinstance(answer, dict):
        raise ProviderError("Bedrock's InvokeModel answer is not a JSON object", "server_error", reached=True)
    return answer
