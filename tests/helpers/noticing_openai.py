"""The instant OpenAI upstream, saying when it has a request: a test that must act while the upstream works on one
(cancel the call, stop the gateway) waits for `has_request` rather than guessing a time a loaded machine may exceed."""

from __future__ import annotations

import threading

from tokenomy.emulate.instant_openai import InstantOpenAI


class NoticingOpenAI(InstantOpenAI):
    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.has_request = threading.Event()  # set once a request's body arrived (before its delay_s starts)

    def _refusal(self, body: bytes) -> bytes | None:
        self.has_request.set()
        return None
