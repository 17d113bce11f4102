"""Demo step: one gateway for every SDK a team uses. `tokenomy serve` (in-process) speaks OpenAI's APIs (chat
completions and Responses), Anthropic's, Bedrock's and Gemini's; each official SDK calls the local model through it,
and every call is in its ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "The gateway: the openai, anthropic, boto3 and google-genai SDKs through one base URL"
QUESTION = "Name one primary colour."
MAX_TOKENS = 12


def _ask_each_sdk(url: str) -> list[tuple[str, str, str]]:
    """(SDK, the API it spoke, the answer) for one question from each official SDK, pointed at the gateway."""
    import anthropic
    import boto3
    import openai
    from botocore.config import Config
    from google import genai

    answers = []
    chat = openai.OpenAI(base_url=url + "/v1", api_key="demo", max_retries=0)
    reply = chat.chat.completions.create(
        model="local", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": QUESTION}]
    )
    answers.append(("openai", "POST /v1/chat/completions", reply.choices[0].message.content or ""))
    response = chat.responses.create(model="local", max_output_tokens=MAX_TOKENS, input=QUESTION)
    answers.append(("openai", "POST /v1/responses", response.output_text))
    claude = anthropic.Anthropic(base_url=url, api_key="demo", max_retries=0)
    message = claude.messages.create(
        model="local", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": QUESTION}]
    )
    answers.append(("anthropic", "POST /v1/messages", "".join(b.text for b in message.content if b.type == "text")))
    # A gateway with keys takes its key as the access key id over http (botocore sends bearer tokens to https only,
    # so signature v4 is asked for: a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK would otherwise be tried and fail).
    session = boto3.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1")
    bedrock = session.client("bedrock-runtime", endpoint_url=url, config=Config(signature_version="v4"))
    converse = bedrock.converse(
        modelId="local",
        messages=[{"role": "user", "content": [{"text": QUESTION}]}],
        inferenceConfig={"maxTokens": MAX_TOKENS},
    )
    said = "".join(b.get("text", "") for b in converse["output"]["message"]["content"])
    answers.append(("boto3", "POST /model/local/converse", said))
    # Claude's own Bedrock client (InvokeModel with the Messages body), as coding agents on Bedrock use it.
    on_bedrock = anthropic.AnthropicBedrock(base_url=url, api_key="demo", aws_region="us-east-1", max_retries=0)
    invoked = on_bedrock.messages.create(
        model="local", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": QUESTION}]
    )
    said = "".join(b.text for b in invoked.content if b.type == "text")
    answers.append(("anthropic (Bedrock)", "POST /model/local/invoke", said))
    gemini = genai.Client(api_key="demo", vertexai=False, http_options={"base_url": url})
    generated = gemini.models.generate_content(
        model="local", contents=QUESTION, config={"max_output_tokens": MAX_TOKENS}
    )
    answers.append(("google-genai", "POST /v1beta/models/local:generateContent", generated.text or ""))
    return answers


def run(ctx: DemoContext) -> None:
    from tokenomy.commands._output import table
    from tokenomy.config import parse_config
    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway.app import create_app
    from tokenomy.ledger.store import open_store

    ledger = ctx.workdir / "gateway.duckdb"
    with ServerThread(create_app(parse_config({}), str(ledger)), lifespan="on") as url:
        answers = _ask_each_sdk(url)
    events = sorted(open_store(ledger).events(), key=lambda e: e.ts)
    rows = [
        [sdk, api, answer.strip().replace("\n", " ")[:48], e.input_tokens, e.cache_read_tokens, e.output_tokens]
        for (sdk, api, answer), e in zip(answers, events, strict=False)
    ]
    ctx.console.print(
        table(
            f"One question from each SDK to `local` through the gateway ({url}), as its ledger recorded them",
            ["SDK", "API", "answer", "input", "cache read", "output"],
            rows,
        )
    )
    ctx.console.print(
        f"{len(answers)} calls answered, {len(events)} rows in the gateway's ledger ({ledger.name}); after the first, "
        "the local model read the shared prompt from its cache whichever API asked. An application keeps its SDK and "
        "moves behind Tokenomy by its base URL; the route it names can be any provider, a fallback chain or a routing "
        "policy, with the same keys, budgets and caching."
    )
