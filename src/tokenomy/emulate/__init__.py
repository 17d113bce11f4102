"""Offline stand-ins for hosted LLM APIs, backed by the real local model.

`bedrock_runtime.create_app()` serves Amazon Bedrock Runtime's Converse / ConverseStream wire
shapes (ConverseStream in AWS event-stream framing) so the unmodified boto3 client works against
it; `anthropic_api.create_app()` serves Anthropic's Messages API (JSON and SSE). Both honour the
cache points a client sends, with the catalog's minimum length and TTL, and can inject throttling.
"""
