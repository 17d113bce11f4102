"""Surviving throttling and errors: retries with backoff, client-side rate limits, fallbacks."""
