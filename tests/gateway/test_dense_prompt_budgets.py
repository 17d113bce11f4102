"""Concurrent calls whose prompts tokenize denser than ~4 characters a token, under a key's budget. The prompt part
of a call's worst case was the estimate (`token_estimate`), which a digit-heavy prompt beats fourfold on a tokenizer
that splits digits (SmolLM2's, Gemini's, Llama 2's: one token a digit): each concurrent call was admitted on a
quarter of what it cost, and together they overspent the budget by N times the gap. The prompt is now reserved at an
upper bound of its tokens (`token_estimate.bound_length`), and what the calls settle never exceeds the budget."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai

from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.keys import KeyStore
from tokenomy.ledger.store import open_store

DIGITS = "".join(str(i * 7919 % 10) for i in range(4000))  # 4,000 digits: 1,000 tokens estimated, 4,000 billed


class TrueCountUpstream:
    """An OpenAI-format upstream that reports a prompt's true token count on a digit-splitting tokenizer (each digit
    one token, the rest ~4 characters a token, and OpenAI's framing: 3 tokens a message and 3 priming the answer),
    answering after `delay_s` so that every call is in flight at once."""

    def __init__(self, delay_s: float = 0.5) -> None:
        self.calls = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                embeds = self.path.endswith("/embeddings")
                text = body["input"] if embeds else "".join(m["content"] for m in body["messages"])
                digits = sum(c.isdigit() for c in text)
                prompt = digits + (len(text) - digits + 3) // 4
                time.sleep(delay_s)
                upstream.calls += 1
                if embeds:
                    answer = json.dumps(
                        {
                            "object": "list",
                            "model": body["model"],
                            "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
                            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
                        }
                    ).encode()
                else:
                    prompt += 3 * len(body["messages"]) + 3
                    answer = json.dumps(
                        {
                            "id": "c",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                            ],
                            "usage": {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1},
                        }
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _spend_concurrently(ledger_path, budget: Decimal, model: str, send) -> tuple[list, list[str], int, Decimal]:
    """Twelve concurrent calls (`send(client)`) on a key with `budget`, to `model` behind an upstream that reports the
    true token count: the key's ledger rows, each call's outcome ("answered" or "refused"), the upstream's call count
    and the spend settled."""
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=budget, period="month")
    upstream = TrueCountUpstream()
    models = {"m": {"provider": "openai", "model": model, "base_url": upstream.url}}
    app = create_app(parse_config({"auth": True, "models": models}), str(ledger_path))
    try:
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=60)

            def call(_: int) -> str:
                try:
                    send(client)
                    return "answered"
                except openai.RateLimitError as exc:
                    assert exc.body["code"] == "budget_exceeded", exc.body
                    return "refused"

            with ThreadPoolExecutor(12) as pool:
                outcomes = list(pool.map(call, range(12)))
    finally:
        upstream.close()
    events = [e for e in open_store(ledger_path).events() if e.key_id == key.key_id]
    return events, outcomes, upstream.calls, sum((e.cost_usd for e in events), Decimal(0))


def test_concurrent_digit_heavy_calls_never_settle_past_the_keys_budget(ledger_path):
    # gpt-4o-mini: $0.15 per 1M input tokens. Each call costs ~4,000 x $0.15 / 1M = $0.0006 (and one output token);
    # it was reserved at ~1,000 prompt tokens ($0.00015), so 12 concurrent calls all fit a $0.003 budget: $0.0072.
    budget = Decimal("0.003")
    events, outcomes, calls, spent = _spend_concurrently(
        ledger_path,
        budget,
        "gpt-4o-mini",
        lambda client: client.chat.completions.create(
            model="m", max_tokens=1, messages=[{"role": "user", "content": DIGITS}]
        ),
    )
    assert len(events) == calls == outcomes.count("answered")  # every call the upstream answered is billed
    assert all(e.input_tokens >= 4000 for e in events)  # settled at the upstream's count, not the estimate
    assert outcomes.count("answered") >= 3, outcomes  # the budget holds several such calls: it is not refusing all
    assert spent <= budget, f"{outcomes.count('answered')} calls settled ${spent}, over the ${budget} budget"


def test_concurrent_digit_heavy_embeddings_never_settle_past_the_keys_budget(ledger_path):
    # text-embedding-3-small: $0.02 per 1M tokens, so 4,000 digits cost $0.00008; reserved at the estimate ($0.00002)
    # 12 concurrent calls all fit a $0.0004 budget, and settled $0.00096.
    budget = Decimal("0.0004")
    events, outcomes, calls, spent = _spend_concurrently(
        ledger_path,
        budget,
        "text-embedding-3-small",
        lambda client: client.embeddings.create(model="m", input=DIGITS, encoding_format="float"),
    )
    assert len(events) == calls == outcomes.count("answered") >= 3, outcomes
    assert all(e.input_tokens == 4000 for e in events)  # settled at the upstream's count
    assert spent <= budget, f"{outcomes.count('answered')} calls settled ${spent}, over the ${budget} budget"
