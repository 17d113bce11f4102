"""`ChatRequest.replaced`, the copy the client makes of every request it sends: the same request as
`dataclasses.replace` gives, every field carried, the changed ones set, nothing shared that is changed."""

from __future__ import annotations

import dataclasses

import pytest

from tokenomy.messages import ONE_HOUR, ChatRequest, ImageBlock, Message, RequestMeta, TextBlock
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec


def full_request() -> ChatRequest:
    """A request with every field set to something other than its default."""
    return ChatRequest(
        messages=[Message("user", [TextBlock("hi"), ImageBlock("image/png", base64="iVBORw0KGgo=")], True, "ann")],
        model="fast",
        system="be brief",
        max_tokens=64,
        max_tokens_name="max_completion_tokens",
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        stop=["END"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        tools=[ToolSpec("get_weather", "weather", {"type": "object", "properties": {}})],
        tool_choice=ToolChoice("tool", "get_weather"),
        parallel_tool_calls=False,
        response_format=ResponseFormat("json_object"),
        reasoning=Reasoning(effort="low"),
        user="u1",
        prompt_cache_key="k1",
        extra={"logprobs": True},
        system_cache_point=ONE_HOUR,
        system_breaks=((2, 4, True),),
        tools_cache_point=True,
        native_body={"prompt": "hi"},
        region="eu-west-1",
        meta=RequestMeta(task="t", tags={"a": "b"}, tenant="team", key_id="k", route="r", tier="x", request_id="id"),
    )


def test_every_field_is_carried_and_the_changed_ones_set():
    request = full_request()
    defaults = ChatRequest(messages=[])
    assert all(
        getattr(request, f.name) != getattr(defaults, f.name) for f in dataclasses.fields(ChatRequest) if f.init
    )  # (so a field the copy dropped would show)
    meta = RequestMeta(tier="cheap")
    copy = request.replaced(model="gpt-4o-mini", region="us-east-1", meta=meta)
    assert copy == dataclasses.replace(request, model="gpt-4o-mini", region="us-east-1", meta=meta)
    assert (copy.model, copy.region, copy.meta) == ("gpt-4o-mini", "us-east-1", meta)
    assert request.model == "fast" and request.region == "eu-west-1"  # the original is left as it was
    assert copy is not request and copy.messages is request.messages  # a shallow copy, as replace makes


def test_a_field_the_request_has_not_is_an_error_as_with_replace():
    with pytest.raises(TypeError):
        full_request().replaced(modle="x")
