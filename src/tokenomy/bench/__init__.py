"""Benchmarking cost per task against quality on your own prompts."""
