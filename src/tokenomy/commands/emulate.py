"""`tokenomy emulate`: local stand-ins for hosted APIs, backed by the real local model."""

from __future__ import annotations

from typing import Optional

import typer

from tokenomy.commands._options import bind_host, http_url, number_option
from tokenomy.commands._output import console
from tokenomy.errors import ConfigError


def _check(port: int, host: str) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: give a TCP port between 1 and 65535")
    from tokenomy.emulate.server import check_listen

    check_listen(host, port)  # before the banner: "emulator on http://..." then "cannot listen" misled


def register(app: typer.Typer) -> None:
    emulate = typer.Typer(help="Serve offline emulators of hosted LLM APIs on the local model.", no_args_is_help=True)
    app.add_typer(emulate, name="emulate")

    @emulate.command("bedrock")
    def bedrock(
        port: int = typer.Option(8787, "--port", help="TCP port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind.", callback=bind_host),
        throttle_rate: float = number_option(
            0.0, "--throttle-rate", min=0, max=1, help="Fraction of calls answered 429 ThrottlingException."
        ),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the throttling RNG."),
        retry_after: Optional[float] = number_option(
            None, "--retry-after", min=0, help="Send Retry-After (seconds) on throttled calls."
        ),
        s3_endpoint_url: Optional[str] = typer.Option(
            None,
            "--s3-endpoint-url",
            callback=http_url,  # "notaurl" was taken: the emulator served and every batch job failed at S3
            help="S3 endpoint batch jobs read and write (default: AWS_ENDPOINT_URL_S3, else AWS S3).",
        ),
        batch_step_seconds: float = number_option(
            1.0,
            "--batch-step-seconds",
            min=0,
            help="Seconds a batch job spends in each of Submitted, Validating and Scheduled.",
        ),
        batch_min_records: Optional[int] = typer.Option(
            None, "--batch-min-records", min=1, help="Records a batch job needs (default: the catalog quota, 100)."
        ),
    ) -> None:
        """Serve Bedrock Runtime Converse/ConverseStream, CountTokens, InvokeModel for the Titan and Cohere embedding
        models and the batch-job API (model-invocation-job) for any catalog Bedrock model id (boto3 endpoint_url)."""
        _check(port, host)
        from tokenomy.emulate.bedrock_batch import configure
        from tokenomy.emulate.bedrock_runtime import create_app
        from tokenomy.emulate.server import serve

        console.print(
            f"Bedrock Runtime emulator on http://{host}:{port}  (throttle {throttle_rate:.0%})\n"
            f"  boto3.client('bedrock-runtime', endpoint_url='http://{host}:{port}', region_name='us-east-1',"
            " aws_access_key_id='x', aws_secret_access_key='x')\n"
            f"  batch jobs: boto3.client('bedrock', endpoint_url='http://{host}:{port}', ...), S3 at "
            f"{s3_endpoint_url or 'AWS_ENDPOINT_URL_S3 / AWS S3'}"
        )
        app = create_app(throttle_rate=throttle_rate, seed=seed, retry_after=retry_after)
        batch: dict = {"step_seconds": batch_step_seconds, "queue_seconds": batch_step_seconds}
        if s3_endpoint_url:
            batch["s3_endpoint_url"] = s3_endpoint_url
        if batch_min_records is not None:
            batch["min_records"] = batch_min_records
        configure(app, **batch)
        serve(app, host, port)

    @emulate.command("anthropic")
    def anthropic(
        port: int = typer.Option(8788, "--port", help="TCP port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind.", callback=bind_host),
        throttle_rate: float = number_option(
            0.0, "--throttle-rate", min=0, max=1, help="Fraction of calls answered 429 rate_limit_error."
        ),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the throttling RNG."),
        retry_after: Optional[float] = number_option(
            None, "--retry-after", min=0, help="Send retry-after (seconds) on throttled calls."
        ),
    ) -> None:
        """Serve Anthropic's Messages API (POST /v1/messages, JSON and SSE, /v1/messages/count_tokens, and the
        Message Batches under /v1/messages/batches) for catalog Claude models."""
        _check(port, host)
        from tokenomy.emulate.anthropic_batch import create_app
        from tokenomy.emulate.server import serve

        console.print(
            f"Anthropic Messages emulator on http://{host}:{port}  (throttle {throttle_rate:.0%})\n"
            f"  anthropic.Anthropic(base_url='http://{host}:{port}', api_key='x')"
        )
        serve(create_app(throttle_rate=throttle_rate, seed=seed, retry_after=retry_after), host, port)

    @emulate.command("openai-batch")
    def openai_batch(
        port: int = typer.Option(8789, "--port", help="TCP port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind.", callback=bind_host),
        validating_seconds: float = number_option(
            1.0, "--validating-seconds", min=0, help="Seconds a batch spends validating."
        ),
        instant: bool = typer.Option(
            False, "--instant", help="Answer every batch with the fast deterministic engine instead of the local model."
        ),
    ) -> None:
        """Serve OpenAI's Files + Batches API (/v1/files, /v1/batches) for catalog OpenAI models."""
        _check(port, host)
        from tokenomy.emulate.instant_engine import InstantEngine
        from tokenomy.emulate.openai_batch_api import create_app
        from tokenomy.emulate.server import serve

        console.print(
            f"OpenAI Batch emulator on http://{host}:{port}/v1\n"
            f"  openai.OpenAI(base_url='http://{host}:{port}/v1', api_key='x')"
        )
        serve(
            create_app(engine=InstantEngine() if instant else None, validating_seconds=validating_seconds), host, port
        )

    @emulate.command("azure-openai")
    def azure_openai(
        port: int = typer.Option(8791, "--port", help="TCP port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind.", callback=bind_host),
        deployment: list[str] = typer.Option(
            [],
            "--deployment",
            help="A deployment as NAME=MODEL (a catalog OpenAI model); repeatable. Deployments named after an "
            "OpenAI model always exist.",
        ),
        validating_seconds: float = number_option(
            1.0, "--validating-seconds", min=0, help="Seconds a batch spends validating."
        ),
        instant: bool = typer.Option(
            False, "--instant", help="Answer with the fast deterministic engine instead of the local model."
        ),
    ) -> None:
        """Serve Azure OpenAI's data plane: /openai/deployments/{deployment}/chat/completions (JSON and SSE)
        and Files + Batches under /openai, each with ?api-version=, for the openai SDK's AzureOpenAI client."""
        from tokenomy.emulate.azure_openai import create_app
        from tokenomy.emulate.instant_engine import InstantEngine
        from tokenomy.emulate.server import serve

        deployments = {}
        for item in deployment:
            name, sep, model = item.partition("=")
            if not sep or not name.strip() or not model.strip():
                raise ConfigError(f"--deployment {item!r}: write NAME=MODEL, e.g. --deployment chat-prod=gpt-4o-mini")
            deployments[name.strip()] = model.strip()
        _check(port, host)
        app = create_app(deployments, InstantEngine() if instant else None, validating_seconds=validating_seconds)
        names = ", ".join(f"{n} -> {m}" for n, m in deployments.items()) or "none configured"
        console.print(
            f"Azure OpenAI emulator on http://{host}:{port}  (deployments: {names})\n"
            f"  openai.AzureOpenAI(azure_endpoint='http://{host}:{port}', api_version='2024-10-21', api_key='x')"
        )
        serve(app, host, port)

    @emulate.command("gemini")
    def gemini(
        port: int = typer.Option(8790, "--port", help="TCP port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind.", callback=bind_host),
        throttle_rate: float = number_option(
            0.0, "--throttle-rate", min=0, max=1, help="Fraction of calls answered 429 RESOURCE_EXHAUSTED."
        ),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the throttling RNG."),
        batch_pending_seconds: float = number_option(
            1.0, "--batch-pending-seconds", min=0, help="Seconds a batch stays pending before it runs."
        ),
        instant: bool = typer.Option(
            False, "--instant", help="Answer with the fast deterministic engine instead of the local model."
        ),
    ) -> None:
        """Serve the Gemini API (generateContent, streamGenerateContent, countTokens, cachedContents, batches) and
        Vertex AI (the same, plus batchPredictionJobs with an in-memory Cloud Storage) for catalog Gemini models
        (google-genai: http_options base_url)."""
        _check(port, host)
        from tokenomy.emulate.gemini_api import create_app
        from tokenomy.emulate.instant_engine import InstantEngine
        from tokenomy.emulate.server import serve

        console.print(
            f"Gemini API emulator on http://{host}:{port}  (throttle {throttle_rate:.0%})\n"
            f"  genai.Client(api_key='x', http_options={{'base_url': 'http://{host}:{port}'}})\n"
            f"  Vertex AI batch: tokenomy batch submit FILE --model gemini-2.5-flash --backend vertex "
            f"--endpoint-url http://{host}:{port} --gcs-uri gs://bucket/prefix --project any"
        )
        app = create_app(
            throttle_rate=throttle_rate,
            seed=seed,
            engine=InstantEngine() if instant else None,  # type: ignore[arg-type]
            batch_pending_seconds=batch_pending_seconds,
        )
        serve(app, host, port)
