"""Prompt caching as a policy: where cache points go, and token-efficiency rules."""
