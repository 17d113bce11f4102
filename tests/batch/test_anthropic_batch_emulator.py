"""The Anthropic emulator's Message Batches, driven by the official `anthropic` SDK."""

from __future__ import annotations

import time
from contextlib import contextmanager

import anthropic
import pytest

from tokenomy.emulate.anthropic_batch import create_app
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread

MODEL = "claude-haiku-4-5-20251001"


@contextmanager
def emulator(**settings):
    with ServerThread(create_app(engine=InstantEngine(), **settings)) as url:
        yield anthropic.Anthropic(base_url=url, api_key="x")


def request(cid: str, **params) -> dict:
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": f"topic {cid} please"}]}
    return {"custom_id": cid, "params": {**body, **params}}


def ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.02)
    raise AssertionError(f"{batch_id} did not end")


def test_a_batch_answers_errors_and_counts_each_request_once_it_ends() -> None:
    with emulator(error_ids={"c": "overloaded_error"}, request_delay_s=0.05) as client:
        batch = client.messages.batches.create(
            requests=[request("a"), request("b", temperature=3), request("c"), request("d", model="claude-none")]
        )
        assert batch.processing_status == "in_progress" and batch.request_counts.processing == 4
        assert batch.results_url is None  # none until the batch ends, as the API says
        with pytest.raises(anthropic.BadRequestError, match="still processing"):  # the SDK asks only with a URL
            client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=object)
        batch = ended(client, batch.id)
        counts = batch.request_counts
        assert (counts.processing, counts.succeeded, counts.errored) == (0, 1, 3) and batch.ended_at
        results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded" and results["a"].message.usage.output_tokens > 0
    assert "a" in results["a"].message.content[0].text  # the answer echoes its own prompt
    assert results["b"].error.error.type == "invalid_request_error"
    assert "temperature" in results["b"].error.error.message
    assert results["c"].error.error.type == "overloaded_error"
    assert results["d"].error.error.type == "not_found_error"


def test_the_window_running_out_expires_the_rest_and_cancel_cancels_it() -> None:
    with emulator(request_delay_s=0.02, seconds_per_hour=0.2 / 24) as client:
        batch = ended(client, client.messages.batches.create(requests=[request(f"r{i}") for i in range(50)]).id)
        counts = batch.request_counts
        assert 0 < counts.succeeded < 50 and counts.expired == 50 - counts.succeeded
        kinds = {r.result.type for r in client.messages.batches.results(batch.id)}
        assert kinds == {"succeeded", "expired"}
    with emulator(request_delay_s=0.02) as client:
        batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(50)])
        time.sleep(0.1)
        cancelled = client.messages.batches.cancel(batch.id)
        assert cancelled.cancel_initiated_at is not None
        batch = ended(client, batch.id)
        assert batch.request_counts.canceled > 0 and batch.request_counts.expired == 0
        assert [b.id for b in client.messages.batches.list(limit=10)] == [batch.id]


def test_malformed_batches_are_refused_as_the_api_refuses_them() -> None:
    with emulator() as client:
        with pytest.raises(anthropic.BadRequestError, match="custom_id"):
            client.messages.batches.create(requests=[request("has space")])
        with pytest.raises(anthropic.BadRequestError, match="duplicate"):
            client.messages.batches.create(requests=[request("a"), request("a")])
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve("msgbatch_missing")


def test_the_batchs_beta_header_applies_to_each_of_its_requests() -> None:
    # A batch's requests were prepared without the create's anthropic-beta header, so none got interleaved thinking
    # (a budget above max_tokens was errored) or fast mode. The header applies to every request of the batch, as
    # the API's does: a request's params carry no header of its own.
    thinking = {"max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 2048}}
    fast = {"model": "claude-opus-5", "speed": "fast"}
    betas = {"anthropic-beta": "interleaved-thinking-2025-05-14,fast-mode-2026-02-01"}
    with emulator() as client:
        answered = {}
        for headers in ({}, betas):
            batch = client.messages.batches.create(
                requests=[request("think", **thinking), request("fast", **fast)], extra_headers=headers
            )
            ended(client, batch.id)
            answered[bool(headers)] = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert (
        answered[False]["think"].type == "errored" and "budget_tokens" in answered[False]["think"].error.error.message
    )
    assert answered[False]["fast"].message.usage.speed == "standard"  # a research preview's fast mode needs its beta
    assert [block.type for block in answered[True]["think"].message.content] == ["thinking", "text"]
    assert answered[True]["fast"].message.usage.speed == "fast"
