"""The embeddings request's checks and the figures taken from it (estimate, fingerprint)."""

import pytest

from tokenomy.gateway.embeddings_request import parse_embeddings_request
from tokenomy.gateway.openai_shapes import RequestError


def test_each_input_shape_gives_its_items_and_an_estimate():
    text = parse_embeddings_request({"model": "m", "input": "x" * 10})
    texts = parse_embeddings_request({"model": "m", "input": ["abcd", "abcdefgh"]})
    ids = parse_embeddings_request({"model": "m", "input": [1, 2, 3]})
    lists = parse_embeddings_request({"model": "m", "input": [[1, 2], [3]], "encoding_format": "base64"})
    assert text.items == ("x" * 10,) and text.estimated_tokens() == 3  # ~4 characters a token, rounded up
    assert texts.items == ("abcd", "abcdefgh") and texts.estimated_tokens() == 3
    assert ids.items == ((1, 2, 3),) and ids.estimated_tokens() == 3  # token ids count exactly
    assert lists.items == ((1, 2), (3,)) and lists.estimated_tokens() == 3
    assert lists.text() == "1 2\n3"


def test_the_body_goes_on_as_sent_with_only_the_model_replaced():
    body = {"model": "route", "input": ["a"], "dimensions": 256, "user": "u", "encoding_format": "float"}
    asked = parse_embeddings_request(body)
    assert asked.forwarded("text-embedding-3-small") == {**body, "model": "text-embedding-3-small"}
    assert body["model"] == "route"  # the caller's body is not changed


def test_the_fingerprint_tells_inputs_apart_and_repeats_together():
    one = parse_embeddings_request({"model": "a", "input": ["x", "y"]}).fingerprint()
    assert one == parse_embeddings_request({"model": "b", "input": ["x", "y"], "user": "u"}).fingerprint()
    assert one != parse_embeddings_request({"model": "a", "input": ["y", "x"]}).fingerprint()
    assert one != parse_embeddings_request({"model": "a", "input": "x y"}).fingerprint()


def test_the_first_wrong_field_is_named_in_the_order_sent():
    with pytest.raises(RequestError) as wrong:
        parse_embeddings_request({"model": "m", "input": "x", "stream": True, "n": 2})
    assert wrong.value.param == "stream" and "remove it" in str(wrong.value)
    with pytest.raises(RequestError) as deep:
        parse_embeddings_request({"model": "m", "input": [[1, 2], [3, 4.0]]})
    assert deep.value.param == "input[1][1]" and "4.0" in str(deep.value)
