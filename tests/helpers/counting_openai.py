"""The instant OpenAI-format upstream, counting the calls it received (and so answered and billed, whoever is still
listening): what a test compares the ledger's rows with."""

from __future__ import annotations

from tokenomy.emulate.instant_openai import InstantOpenAI


class CountingOpenAI(InstantOpenAI):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def _refusal(self, body: bytes) -> bytes | None:
        self.calls += 1
        return None
