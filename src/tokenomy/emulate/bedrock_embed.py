"""InvokeModel for Bedrock's embedding models in the emulator: Titan Text Embeddings V2 and Cohere Embed.

Bodies and answers as Bedrock documents them (`providers.bedrock_embeddings` has the models): Titan embeds one
`inputText` (`dimensions` 256/512/1024, `normalize` default true) and answers `{"embedding", "embeddingsByType",
"inputTextTokenCount"}`; Cohere embeds up to 96 `texts` (`input_type` required) and answers `{"id", "embeddings",
"response_type", "texts"}` (by type when `embedding_types` is sent), its tokens only in the
`x-amzn-bedrock-input-token-count` header, which Bedrock sends with every InvokeModel answer (as
`x-amzn-bedrock-invocation-latency`). Vectors are deterministic: hashed from the text (`embedding_vector`), as
float32 values, Titan's scaled to length 1 unless `normalize` is false. Tokens are the engine's count of the text
(the local tokenizer; ~4 characters a token with the instant engine).
"""

from __future__ import annotations

import math
import struct
import uuid
from typing import Any

from tokenomy.emulate.bedrock_errors import BedrockError, invalid
from tokenomy.emulate.instant_openai import embedding_vector
from tokenomy.providers.bedrock_embeddings import COHERE_BATCH, INPUT_TYPES, EmbeddingModel, embedding_model


def _malformed(detail: str) -> BedrockError:
    return invalid(f"Malformed input request: {detail}, please reformat your input and try again.")


def float32(values: list[float]) -> list[float]:
    """The values as float32 holds them (Bedrock's vectors are float32): floats and base64 then carry the same."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def titan_vector(text: str, dimensions: int = 1024, normalize: bool = True) -> list[float]:
    """The vector the emulator answers for `text` on Titan Text Embeddings V2."""
    vector = embedding_vector(text, dimensions)
    if normalize:
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vector = [v / norm for v in vector]
    return float32(vector)


def cohere_vector(text: str, dimensions: int = 1024) -> list[float]:
    """The vector the emulator answers for `text` on Cohere Embed (not normalized, as Cohere's are not)."""
    return float32(embedding_vector(text, dimensions))


def is_embedding_model(model_id: str) -> bool:
    return embedding_model(model_id) is not None


def invoke_embedding(model_id: str, body: Any, count) -> tuple[dict[str, Any], int]:
    """The answer Bedrock sends for `body` on an embedding model, and its input tokens (`count(text)` each)."""
    model = embedding_model(model_id)
    if model is None:
        raise BedrockError("ResourceNotFoundException", f"Model {model_id} is not an embedding model.")
    if not isinstance(body, dict):
        raise _malformed("the body must be a JSON object")
    if model.family == "titan":
        return _titan(body, model, count)
    return _cohere(body, model, count)


def _titan(body: dict[str, Any], model: EmbeddingModel, count) -> tuple[dict[str, Any], int]:
    unknown = sorted(set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"})
    if unknown:
        raise _malformed(f"extraneous key [{unknown[0]}] is not permitted")
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise _malformed("#/inputText: expected minLength: 1")
    if model.max_chars is not None and len(text) > model.max_chars:
        raise _malformed(f"#/inputText: expected maxLength: {model.max_chars}, actual: {len(text)}")
    dimensions = body.get("dimensions", model.dimensions[0])
    if dimensions not in model.dimensions:
        raise _malformed(f"#/dimensions: {dimensions} is not a valid enum value")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise _malformed("#/normalize: expected type: Boolean")
    types = body.get("embeddingTypes", ["float"])
    if not isinstance(types, list) or not types or any(t not in ("float", "binary") for t in types):
        raise _malformed("#/embeddingTypes: expected float and/or binary")
    vector = titan_vector(text, dimensions, normalize)
    tokens = count(text)
    by_type: dict[str, Any] = {}
    if "float" in types:
        by_type["float"] = vector
    if "binary" in types:
        by_type["binary"] = [1 if v > 0 else 0 for v in vector]
    return {"embedding": vector, "embeddingsByType": by_type, "inputTextTokenCount": tokens}, tokens


def _cohere(body: dict[str, Any], model: EmbeddingModel, count) -> tuple[dict[str, Any], int]:
    size_field = model.dimension_field
    allowed = {"texts", "input_type", "truncate", "embedding_types", "images"}
    if size_field:
        allowed |= {size_field, "max_tokens", "inputs"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _malformed(f"extraneous key [{unknown[0]}] is not permitted")
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _malformed("#/texts: expected a non-empty array of strings (the emulator embeds texts only)")
    if len(texts) > COHERE_BATCH:
        raise _malformed(f"#/texts: expected maxItems: {COHERE_BATCH}, actual: {len(texts)}")
    if body.get("input_type") not in INPUT_TYPES:
        raise _malformed(f"#/input_type: required, one of {', '.join(INPUT_TYPES)}")
    truncate = body.get("truncate", "NONE")
    if truncate not in ("NONE", "START", "END", "LEFT", "RIGHT"):
        raise _malformed(f"#/truncate: {truncate} is not a valid enum value")
    if truncate == "NONE" and model.max_chars is not None:
        for index, text in enumerate(texts):
            if len(text) > model.max_chars:
                raise _malformed(f"#/texts/{index}: expected maxLength: {model.max_chars}, actual: {len(text)}")
    dimensions = body.get(size_field, model.dimensions[0]) if size_field else model.dimensions[0]
    if dimensions not in model.dimensions:
        raise _malformed(f"#/{size_field}: {dimensions} is not a valid enum value")
    types = body.get("embedding_types")
    if types is not None and (not isinstance(types, list) or not types or any(t != "float" for t in types)):
        raise _malformed("#/embedding_types: the emulator answers float embeddings only")
    vectors = [cohere_vector(text, dimensions) for text in texts]
    tokens = sum(count(text) for text in texts)
    answer: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": texts}
    if types is None and not model.by_type:
        answer.update(embeddings=vectors, response_type="embeddings_floats")
    else:  # v4 answers by type always
        answer.update(embeddings={"float": vectors}, response_type="embeddings_by_type")
    return answer, tokens
