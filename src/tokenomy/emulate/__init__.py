"""Offline stand-ins for hosted LLM APIs, backed by the real local model.

`bedrock_runtime.create_app()` serves Amazon Bedrock Runtime's Converse / ConverseStream wire
shapes (ConverseStream in AWS event-stream framing) so the unmodified boto3 client works against
it; `anthropic_api.create_app()` serves Anthropic's Messages API (JSON and SSE). Both honour the
cache points a client sends, with the catalog's minimum length and TTL, and can inject throttling.
They accept tool, image, document and reasoning blocks; a forced tool is answered with arguments the
local model generates under the tool's JSON-schema grammar (`engine.Engine.generate_json`).

Bedrock layout: `bedrock_errors` (error shape, caller region) <- `bedrock_blocks` (content blocks) <-
`bedrock_request` (validation) <- `bedrock_converse` (answers) <- `bedrock_batch_worker` <- `bedrock_batch` (router) <-
`bedrock_runtime` (router + the one app factory); nothing imports upward.
"""
