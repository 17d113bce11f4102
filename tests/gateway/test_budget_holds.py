"""Budget reservations in Redis are holds with a lease: a worker killed before it settled (SIGKILL, OOM) no longer
keeps its reservations on the shared counters until the budget's period ends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
import yaml

from helpers import free_port, require, wait_for_port
from tokenomy.config import parse_config
from tokenomy.emulate.instant_openai import InstantOpenAI
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.budgets import Budgets, Reservation, Scope
from tokenomy.gateway.limits import RedisLimits

TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
# 100 input tokens (400 characters) at $0.25/M and the 200-token output cap at $1.25/M: one request's reservation.
PER_REQUEST = Decimal(100) * Decimal("0.25") / 10**6 + Decimal(200) * Decimal("1.25") / 10**6
MESSAGE = {"model": "fast", "messages": [{"role": "user", "content": "y" * 400}], "max_tokens": 200}


@pytest.mark.redis
def test_an_unsettled_hold_is_released_when_its_lease_ends_and_a_late_settlement_adds_the_whole_cost(redis_url):
    async def run() -> list[object]:
        limits = RedisLimits(redis_url, hold_seconds=1)
        counter = f"key:holds-{time.time_ns()}"
        budget = [(counter, 150)]
        seen: list[object] = []
        try:
            assert await limits.seed(counter, 0)
            first = await limits.reserve(budget, 100, "first")
            seen.append(await limits.reserve(budget, 100, "second"))  # no room while the first is held
            await asyncio.sleep(1.2)  # the first's worker "died": its lease ends
            second = await limits.reserve(budget, 30, "second")  # releases the first's 100, then holds 30
            seen.append((second.refused, await limits.spent(counter)))
            # The first's worker was only slow: it settles at 80 after its hold was released, so 80 is added whole.
            await limits.settle([(counter, first.epochs[counter], 100, 80, "first")])
            seen.append(await limits.spent(counter))
            await limits.settle([(counter, second.epochs[counter], 30, 20, "second")])  # in time: 30 becomes 20
            seen.append(await limits.spent(counter))
            seen.append(await limits.client.zcard(f"tokenomy:holds:{counter}"))
        finally:
            await limits.aclose()
        return seen

    refused, (none, after_release), late, settled, holds_left = asyncio.run(run())
    assert refused.refused is not None  # type: ignore[attr-defined]
    assert none is None and after_release == 30
    assert late == 110 and settled == 100 and holds_left == 0


@pytest.mark.redis
def test_a_seeded_counter_starts_without_the_holds_of_the_counter_it_replaces(redis_url):
    # A counter lost (evicted, deleted) while its holds set stayed: those holds must not be taken off the new seed,
    # which counted the ledger's spend and knows nothing of them.
    async def run() -> int | None:
        limits = RedisLimits(redis_url, hold_seconds=1)
        counter = f"key:reseed-{time.time_ns()}"
        try:
            await limits.seed(counter, 0)
            await limits.reserve([(counter, 10**6)], 500, "lost")
            await limits.client.delete(f"tokenomy:spend:{counter}")
            await limits.seed(counter, 700)
            await asyncio.sleep(1.2)
            await limits.reserve([(counter, 10**6)], 1, "next")  # would release the lost hold's 500
            return await limits.spent(counter)
        finally:
            await limits.aclose()

    assert asyncio.run(run()) == 701


@pytest.mark.redis
def test_a_settlement_is_applied_once_however_often_it_is_sent(redis_url):
    # A settlement sent again (redis-py retries a script whose answer was lost; Budgets retries one Redis failed)
    # used to find no hold and add its whole cost a second time.
    async def run() -> list[int | None]:
        limits = RedisLimits(redis_url, hold_seconds=1)
        counter = f"key:once-{time.time_ns()}"
        seen: list[int | None] = []
        try:
            await limits.seed(counter, 0)
            held = await limits.reserve([(counter, 10**6)], 100, "held")
            for _ in range(2):
                await limits.settle([(counter, held.epochs[counter], 100, 80, "held")])
                seen.append(await limits.spent(counter))
            late = await limits.reserve([(counter, 10**6)], 50, "late")
            await asyncio.sleep(1.2)
            await limits.reserve([(counter, 10**6)], 1, "next")  # releases the late one's 50: 81
            for _ in range(2):  # the late one settles at 40, added whole, once
                await limits.settle([(counter, late.epochs[counter], 50, 40, "late")])
                seen.append(await limits.spent(counter))
        finally:
            await limits.aclose()
        return seen

    assert asyncio.run(run()) == [80, 80, 121, 121]


@pytest.mark.redis
def test_a_settlement_from_an_older_epoch_is_added_once_however_often_it_is_sent(redis_url):
    # The counter was lost and re-seeded while a call was out: its settlement adds the whole actual cost (the seed may
    # not have counted it), and sent again (a lost answer, a kept settlement retried) it used to add it again.
    async def run() -> list[int | None]:
        limits = RedisLimits(redis_url)
        counter = f"key:old-epoch-{time.time_ns()}"
        seen: list[int | None] = []
        try:
            await limits.seed(counter, 0)
            held = await limits.reserve([(counter, 10**6)], 100, "out")
            await limits.client.delete(f"tokenomy:spend:{counter}")
            await limits.seed(counter, 500)
            for _ in range(3):
                await limits.settle([(counter, held.epochs[counter], 100, 80, "out")])
                seen.append(await limits.spent(counter))
        finally:
            await limits.aclose()
        return seen

    assert asyncio.run(run()) == [580, 580, 580]


def _redis_server(port: int, data: Path) -> subprocess.Popen:
    server = shutil.which("redis-server")
    require(server is not None, "redis-server not found (run scripts/install-system-deps.sh)")
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, 20, proc)
    return proc


@pytest.mark.redis
def test_a_settlement_redis_could_not_take_is_kept_and_lands_when_redis_is_back(tmp_path):
    # Redis down when a paid call settled: the settlement was logged and dropped, then the call's hold was released
    # when its lease ended, and its cost was missing from the budget counter: the key could overspend.
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    counter = "key:outage:2026-12-01"
    scope = Scope(counter, 10**6, "key_id", "outage", datetime(2026, 12, 1, tzinfo=UTC))

    async def run(server: subprocess.Popen) -> int | None:
        worker = Budgets(RedisLimits(url, hold_seconds=1), None, None, None, shared=True)  # type: ignore[arg-type]
        other = RedisLimits(url, hold_seconds=1)  # another gateway on the same Redis
        try:
            await worker.limits.seed(counter, 0)
            held = await worker.reserve([scope], 100)
            assert isinstance(held, Reservation)
            server.terminate()
            server.wait(10)
            with pytest.raises(Exception):  # noqa: B017 - whatever redis-py raises for a refused connection
                await worker.settle(held, 80)  # the call cost 80
            server = _redis_server(port, tmp_path)
            await asyncio.sleep(1.2)  # the lease ends while the settlement waits for its next try
            await other.reserve([(counter, 10**6)], 10, "other")  # releases the worker's 100-hold: 10
            for _ in range(60):  # the background retry: 1 s, then 2 s after the failure
                if await other.spent(counter) != 10:
                    break
                await asyncio.sleep(0.1)
            return await other.spent(counter)
        finally:
            await worker.aclose()
            await worker.limits.aclose()
            await other.aclose()
            server.terminate()
            server.wait(10)

    assert asyncio.run(run(_redis_server(port, tmp_path))) == 90  # the worker's call spent 80, the other holds 10


def _held_config(redis_url: str, upstream: str, hold_seconds: int) -> dict:
    """A gateway config with keys, shared Redis budgets held `hold_seconds`, and one model at `upstream`."""
    return {
        "auth": True,
        "redis_url": redis_url,
        "gateway": {"budget_hold_seconds": hold_seconds},
        "models": {"fast": {"provider": "openai", "model": "fast", "base_url": upstream, "price_as": HAIKU}},
    }


def _serve(config: dict, tmp_path: Path, ledger: Path) -> tuple[subprocess.Popen, int]:
    """`tokenomy serve` on `config` in its own process group (to be SIGKILLed whole), and its port."""
    path = tmp_path / "tokenomy.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen(
        [TOKENOMY, "serve", "--config", str(path), "--port", str(port), "--ledger", str(ledger)],
        env={**os.environ, "FAST_KEY": "x"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, port


def _killed_mid_call(config: dict, tmp_path, ledger, headers: dict, reserved, then_s: float = 0.0) -> None:
    """Serve `config` in a process of its own, send it a call (to its slow upstream) and SIGKILL the process `then_s`
    after `reserved()` says the call holds its budget."""
    server, port = _serve(config, tmp_path, ledger)
    try:
        wait_for_port(port, 60, server)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(
                httpx.post, f"http://127.0.0.1:{port}/v1/chat/completions", json=MESSAGE, headers=headers, timeout=90
            )
            deadline = time.monotonic() + 30
            while not reserved() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert reserved(), "the call never reserved its budget"
            time.sleep(then_s)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


@pytest.mark.redis
@pytest.mark.slow
def test_a_gateway_killed_mid_call_gives_its_reservation_back_after_the_lease(redis_url, tmp_path):
    # SIGKILL between reserving and settling left the reservation on the shared counter until the period ended: a
    # budget with room for one call refused every later call for the rest of the month.
    ledger = tmp_path / "ledger.duckdb"
    created = subprocess.run(
        [
            TOKENOMY,
            "keys",
            "create",
            "--budget-usd",
            str(PER_REQUEST * Decimal("1.5")),
            "--period",
            "month",
            "--ledger",
            str(ledger),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    headers = {"authorization": f"Bearer {key['key']}"}
    with InstantOpenAI(delay_s=60) as slow, InstantOpenAI() as quick:
        # A 15 s lease: the second gateway's start (0.6 s here) must end within it, on a loaded machine too.
        config = _held_config(redis_url, slow, hold_seconds=15)
        counters = redis_lib.Redis.from_url(redis_url)

        def reserved() -> bool:
            return any(int(counters.get(k) or 0) > 0 for k in counters.keys(f"tokenomy:spend:key:{key['key_id']}:*"))

        _killed_mid_call(config, tmp_path, ledger, headers, reserved)  # the worker dies holding the reservation
        config["models"]["fast"]["base_url"] = quick
        # Another instance, which does not replay the dead one's journal (a restart that does counts the dead call at
        # its replayed row at once: the test below).
        config["gateway"]["journal_dir"] = str(tmp_path / "another-instance")
        with ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on") as url:
            at_once = httpx.post(url + "/v1/chat/completions", json=MESSAGE, headers=headers, timeout=30)
            deadline = time.monotonic() + 60  # the lease ends 15 s after the reservation
            while (
                after_lease := httpx.post(url + "/v1/chat/completions", json=MESSAGE, headers=headers, timeout=30)
            ).status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.5)
    assert at_once.status_code == 429, at_once.text  # still held: the dead worker's call may yet be billed
    assert after_lease.status_code == 200, after_lease.text


@pytest.mark.redis
def test_a_settlement_cancelled_midway_is_kept_and_lands_once(redis_url):
    # A request cancelled while its settlement (or a retry of kept ones) was on its way to Redis lost it: the kept
    # list was swapped out before sending and put back only on an error, not on a cancellation.
    counter = f"key:cancelled-{time.time_ns()}"
    scope = Scope(counter, 10**6, "key_id", "cancelled", datetime(2026, 12, 1, tzinfo=UTC))

    async def run() -> tuple[int, int, int | None]:
        worker = Budgets(RedisLimits(redis_url, hold_seconds=60), None, None, None)  # type: ignore[arg-type]
        admin = redis_lib.asyncio.Redis.from_url(redis_url)
        try:
            await worker.limits.seed(counter, 0)
            held = await worker.reserve([scope], 100)
            assert isinstance(held, Reservation)
            await admin.execute_command("CLIENT", "PAUSE", 4000, "WRITE")  # the settlement waits in Redis
            try:
                settling = asyncio.create_task(worker.settle(held, 80))
                await asyncio.sleep(0.3)
                settling.cancel()  # the client went away
                await asyncio.gather(settling, return_exceptions=True)
                kept = len(worker.unsettled)
            finally:
                await admin.execute_command("CLIENT", "UNPAUSE")
            for _ in range(50):  # the background retry, 1 s after
                if not worker.unsettled:
                    break
                await asyncio.sleep(0.1)
            return kept, len(worker.unsettled), await worker.limits.spent(counter)
        finally:
            await worker.aclose()
            await worker.limits.aclose()
            await admin.aclose()

    kept, left, spent = asyncio.run(run())
    assert (kept, left) == (1, 0)
    assert spent == 80  # once, whether or not the cancelled send reached Redis


@pytest.mark.redis
@pytest.mark.slow
def test_calls_a_killed_gateway_left_unsettled_are_counted_by_the_shared_budget_once_replayed(redis_url, tmp_path):
    # The next start replays the killed gateway's journal: its call in flight becomes a row at its estimate (the
    # upstream billed it). The shared counter never had its settlement: once the dead hold's lease ended, its
    # reservation went and the call was counted nowhere, so the key spent past its budget by every such call.
    from tokenomy.gateway.keys import KeyStore, period_start
    from tokenomy.gateway.limits import to_nano
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal(1), period="month")
    headers = {"authorization": f"Bearer {secret}"}
    counter = f"tokenomy:spend:key:{key.key_id}:{period_start('month').date()}"
    counters = redis_lib.Redis.from_url(redis_url)
    with InstantOpenAI(delay_s=60) as slow, InstantOpenAI() as quick:
        config = _held_config(redis_url, slow, hold_seconds=2)
        # The reservation made, the call goes out (and is billed) within 0.3 s.
        _killed_mid_call(config, tmp_path, ledger, headers, lambda: int(counters.get(counter) or 0) > 0, then_s=0.3)
        time.sleep(2.5)  # the dead hold's lease is over
        config["models"]["fast"]["base_url"] = quick
        with ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on") as url:  # replays the journal
            answer = httpx.post(url + "/v1/chat/completions", json=MESSAGE, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    rows = [e for e in open_store(ledger).events() if e.key_id == key.key_id]
    assert sorted(e.outcome for e in rows) == ["interrupted", "ok"]
    assert int(counters.get(counter)) == sum(to_nano(e.cost_usd) for e in rows)


@pytest.mark.redis
@pytest.mark.parametrize("call", ["whole", "streamed", "embeddings"])
def test_a_retry_whose_budget_redis_cannot_check_is_not_made_and_the_caller_gets_the_billed_attempts_error(
    call, tmp_path, caplog
):
    """The first attempt outwaits its timeout after it went out (billed), and Redis dies meanwhile: the retry's extra
    reservation raised redis-py's ConnectionError, which the budget did not take as "cannot be checked". A whole call
    got a 503 limits_unavailable without its timeout; a streamed one a 200 whose only event was "internal error
    (ConnectionError)", logged with a traceback as a bug. Now the retry is not made (nothing spent unchecked) and the
    caller gets its attempt's timeout, saying the budget could not be checked, in OpenAI's shape either way. An
    embeddings request takes its own retry loop (gateway.embeddings_attempts), which asks the budget the same way."""
    import openai

    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.gateway.keys import KeyStore
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal(1), period="month")
    port = free_port()
    redis = _redis_server(port, tmp_path)
    upstream = ScriptedOpenAI([(200, {}, "held")])  # answers once released: after the gateway's wait has ended
    model = {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU, "timeout_s": 1.5}
    config = {
        "auth": True,
        "redis_url": f"redis://127.0.0.1:{port}/0",
        "models": {"fast": model},
        "routes": {"fast": {"model": "fast", "retry": {"max_attempts": 3, "base_delay_s": 0}}},
    }
    caplog.set_level(logging.WARNING)
    try:
        with ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on") as url:
            sdk = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=30)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                if call == "embeddings":
                    sent = pool.submit(lambda: sdk.embeddings.create(model="fast", input="y" * 400))
                else:
                    sent = pool.submit(lambda: list(sdk.chat.completions.create(**MESSAGE, stream=call == "streamed")))
                assert upstream.received.wait(30), "the first attempt never reached the upstream"
                redis.kill()  # while the attempt is out: its retry is the first to need Redis again
                redis.wait(10)
                with pytest.raises(openai.APIStatusError) as failed:
                    sent.result(60)
    finally:
        upstream.release()
        upstream.close()
        if redis.poll() is None:
            redis.kill()
            redis.wait(10)
    error = failed.value
    assert error.status_code == 504, error.message  # the attempt's timeout, not limits_unavailable
    assert "not tried again: the budget could not be checked" in error.message
    assert "Redis" in error.message and "no room" not in error.message
    assert upstream.calls == 1  # the retry was not made
    rows = open_store(ledger).events()
    assert [(e.key_id, e.outcome) for e in rows] == [(key.key_id, "timeout")]  # the billed attempt
    assert rows[0].cost_usd > 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in caplog.records
    ]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("retry" in m and "not made" in m and "cannot reach Redis" in m for m in warned), warned
