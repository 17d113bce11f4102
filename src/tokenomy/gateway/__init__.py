"""The OpenAI-compatible gateway: one base URL that applies the cost policies to live traffic."""
