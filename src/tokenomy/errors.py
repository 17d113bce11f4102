"""Errors users see. Each names the value or place at fault and says how to fix it."""


class TokenomyError(Exception):
    """Base class: the message is meant for a person and is printed as is."""


class ConfigError(TokenomyError):
    """A config, price file or command-line value is invalid."""


class UnknownModelError(TokenomyError):
    """The model id is not priced anywhere Tokenomy looks."""


class UsageError(TokenomyError):
    """Token counts or modes that cannot be priced (negative, non-integer, batch without prices)."""


class ProviderError(TokenomyError):
    """A provider call failed. `kind` is one of: throttled, client_error, server_error, timeout."""

    def __init__(
        self, message: str, kind: str = "server_error", retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "server_error", "timeout")
