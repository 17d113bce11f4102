"""Errors users see. Each names the value or place at fault and says how to fix it."""

from __future__ import annotations

import codecs
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tokenomy.money import MAX_USD, to_decimal, typed, usd


def read_utf8(path: str | os.PathLike[str], expected: str) -> str:
    """A text file named on the command line. A leading UTF-8 byte-order mark (Windows editors write one) is skipped,
    as the utf-8-sig codec does, for every such file alike. A binary file or another encoding is a ConfigError naming
    the file, the first bad byte and `expected` (what the file should hold), not a UnicodeDecodeError traceback; a
    file that cannot be read one naming it and why."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read ({exc.strerror or exc})") from None
    return utf8_text(data, os.fspath(path), expected)


def utf8_text(data: bytes, name: str, expected: str) -> str:
    """`read_utf8` of bytes already read (a file's, or a decompressed one's), the errors naming `name`."""
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skipped:].decode("utf-8")
    except UnicodeDecodeError as exc:  # the byte counted in the file, the mark included
        raise ConfigError(f"{name}: not UTF-8 text (byte {skipped + exc.start + 1}); expected {expected}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() in text mode reads


def as_written(value: Any) -> str:
    """A value from a user's file or a provider's answer, to quote in an error, as JSON writes it (true, null, "high",
    not Python's True, None, 'high') and with its letters as they are ("très", not "tr\\u00e8s"); what JSON cannot
    write (an SDK's object) by its str. A lone surrogate ("\\ud800", which JSON text may hold but UTF-8 cannot) stays
    escaped: raw, it broke every encoder after us (a 500 from the answer's JSON, a traceback from the console)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, to quote inside ours (pandas ends a tokenizing error with a line break,
    psycopg spreads a connection error over several)."""
    return " ".join(str(exc).split())


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error on one line: "line 2, column 1: expected ..." (PyYAML's text spans several lines, with the
    offending source and a caret, and the message printed to the terminal must stay one line)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = " ".join(str(problem or getattr(exc, "context", None) or exc).split())
    context = getattr(exc, "context", None)
    if problem and context:
        what = f"{what} ({' '.join(str(context).split())})"
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what


# Credentials an error message may carry: an upstream's refusal that repeats the key it was sent (some proxies put the
# Authorization header in their 401's body), a URL with its password (a base_url, a postgresql:// ledger), a Gemini
# request's ?key=. Each is cut to its name before the message reaches a caller, a log or a file.
_HIDDEN = "***"
_SECRET_SHAPES = (
    (re.compile(r"(://[^/\s:@'\"]+:)[^/\s@'\"]+@"), r"\1" + _HIDDEN + "@"),  # scheme://user:PASSWORD@host
    (re.compile(r"(://)[^/\s:@'\"]+@"), r"\1" + _HIDDEN + "@"),  # scheme://TOKEN@host: a proxy's token as the user
    # A token has a digit; prose ("a bearer token") has none.
    (re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + _HIDDEN),
    (re.compile(r"\b(Basic\s+)[A-Za-z0-9+/]{8,}={0,2}"), r"\1" + _HIDDEN),  # the scheme's spelling: not prose
    (
        re.compile(
            r"(?i)((?:x-api-key|x-goog-api-key|api-key|api_key|apikey|access_token|password)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;}&]+"
        ),
        r"\1" + _HIDDEN,
    ),
    (re.compile(r"([?&]key=)[^\s'\"&#]+"), r"\1" + _HIDDEN),
    (re.compile(r"\b(sk-ant-|sk-|tk-|AIza)[A-Za-z0-9_-]{16,}"), r"\1" + _HIDDEN),  # OpenAI, Anthropic, ours, Google
)
_known_secrets: set[str] = set()


def url_without_credential(url: str) -> str:
    """`url` with its credential as ***, to show or keep: the password of a user:password@ part (the user stays, it
    names the account), or a user part alone (some proxies take their token as https://TOKEN@proxy)."""
    try:
        parts = urlsplit(url)
        if parts.username is None:
            return url
    except ValueError:  # not a URL urlsplit can read (a stray "["): the shapes above still find a credential
        return scrub(url)
    user, _, host = parts.netloc.rpartition("@")
    if parts.password is None:
        return urlunsplit(parts._replace(netloc=f"{_HIDDEN}@{host}"))
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:{_HIDDEN}@{host}"))


def remember_secret(value: str | None) -> str | None:
    """Note a credential the process sends (an upstream's key, whatever its shape) for `scrub` to hide; returns it."""
    if value and len(value) >= 8:  # a shorter one would hide ordinary words; no real key is that short
        _known_secrets.add(value)
    return value


def scrub(text: str) -> str:
    """`text` with every credential in it replaced by ***: the keys `remember_secret` noted, and the shapes above."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, _HIDDEN)
    for shape, replacement in _SECRET_SHAPES:
        text = shape.sub(replacement, text)
    return text


def _scrub_in_place(exc: BaseException | None, seen: set[int]) -> None:
    """Hide credentials in `exc` and every exception chained under it (cause and context), in place: their args and
    the text attributes their str is built from (an SDK's `message`, an OSError's `filename`). The exception keeps its
    type, status and the rest of its message, which is what a traceback or an `except` reading it needs."""
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    try:
        exc.args = tuple(scrub(a) if isinstance(a, str) else a for a in exc.args)
        texts = {k: v for k, v in getattr(exc, "__dict__", {}).items() if isinstance(v, str)}
        if isinstance(exc, OSError):
            texts.update({k: v for k in ("strerror", "filename", "filename2") if isinstance(v := getattr(exc, k), str)})
        for name, text in texts.items():
            if scrub(text) != text:
                setattr(exc, name, scrub(text))
    except (AttributeError, TypeError):  # an attribute that cannot be set: the rest is still hidden
        pass
    _scrub_in_place(exc.__cause__, seen)
    _scrub_in_place(exc.__context__, seen)


# A quoted value in an exception's message: kept when it reads as a name (a type, a field), cut otherwise, for it may
# be a request's or an event's content (a KeyError's key, the text a ValueError could not read).
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")


def described(exc: BaseException) -> str:
    """An exception for a log line, without the content it may quote: its type, its message with quoted values that
    are not names cut to '…', and where it was raised (file:line in function), which is what finds the fault."""
    message = _QUOTED.sub(
        lambda m: m.group(0) if _NAME.fullmatch(m.group(1) or m.group(2) or "") else "'…'", one_line(exc)
    )
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    at = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return scrub(f"{type(exc).__name__}: {message}" if message else type(exc).__name__) + at


class TokenomyError(Exception):
    """Base class: the message is meant for a person and is printed as is, credentials hidden (`scrub`). Raised while
    another exception is handled (`raise ProviderError(...) from exc`, an SDK's error), that one and its chain are
    scrubbed too: it becomes this error's cause or context, which an uncaught error's traceback prints, and an SDK
    error repeats what the upstream sent back, the key included when a proxy echoes it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))
        _scrub_in_place(sys.exc_info()[1], set())


class ConfigError(TokenomyError):
    """A config, price file or command-line value is invalid."""


class NotOnThisLedger(ConfigError):
    """A feature that keeps its own state in the ledger database, on a ledger that cannot hold it (ClickHouse keeps
    the calls only)."""


class UnknownModelError(TokenomyError):
    """The model id is not priced anywhere Tokenomy looks."""


# Whether the running command takes --prices (`prices`, `cost`, `import ...`; `commands._common.takes_prices`).
_PRICE_OPTION: ContextVar[bool] = ContextVar("price_option", default=False)


def price_file() -> str:
    """How an error says to add a price: a price file named by TOKENOMY_PRICES, which every command, the gateway and
    the library read, and by --prices where the running command takes it. Naming --prices everywhere sent the users
    of `batch validate`, `chat` or `route train` to an option those commands refuse."""
    if _PRICE_OPTION.get():
        return "a price file (--prices FILE, or TOKENOMY_PRICES=FILE)"
    return "a price file (TOKENOMY_PRICES=FILE)"


@contextmanager
def _taken(option: ContextVar[bool]) -> Iterator[None]:
    token = option.set(True)
    try:
        yield
    finally:
        option.reset(token)


def price_option_taken() -> AbstractContextManager[None]:
    """Within it, `price_file()` names --prices too: the command running takes it."""
    return _taken(_PRICE_OPTION)


# Whether the running command is `cost`, whose --service-tier and --cache-ttl choose the prices a usage record is
# priced at (`commands.core.cost`). Elsewhere (the gateway's and the library's recorder, an import, a report) a call's
# tier and cache TTL are those it was served at, which no option of theirs changes.
_COST_OPTIONS: ContextVar[bool] = ContextVar("cost_options", default=False)


def cost_fix(fix: str, otherwise: str = "") -> str:
    """How a pricing error says its fix: `fix`, naming an option of `cost` (`--service-tier standard`), where `cost`
    runs, and `otherwise` elsewhere. "Use --service-tier standard" sent the gateway's and other commands' users to an
    option only `cost` takes."""
    return fix if _COST_OPTIONS.get() else otherwise


def cost_options_taken() -> AbstractContextManager[None]:
    """Within it, `cost_fix()` names `cost`'s options: the command running is `cost`."""
    return _taken(_COST_OPTIONS)


class UsageError(TokenomyError):
    """Token counts or modes that cannot be priced (negative, non-integer, batch without prices)."""


def not_before(since: datetime, until: datetime) -> UsageError:
    """--since not before --until, with the fix that applies: swap an inverted pair. The same time twice (`--since D
    --until D`, meant as the day D) was told "swap them" too, which changes nothing: --until is exclusive."""
    where = f"--since {since:%Y-%m-%d %H:%M} is not before --until {until:%Y-%m-%d %H:%M}"
    if since > until:
        return UsageError(f"{where}; swap them")
    return UsageError(
        f"{where}; --until is exclusive: give a later one, e.g. --until {until + timedelta(days=1):%Y-%m-%d}"
    )


class ProviderError(TokenomyError):
    """A provider call failed. `kind` is one of: throttled, client_error, server_error, timeout. `param` names the
    request field a provider's API has no place for, when the refusal is Tokenomy's own (nothing was sent).
    `retryable` overrides what the kind implies, for a failure that another attempt would only repeat (and pay for).
    `refused` is what a check before any call found the model cannot take (a providers.refusals.Unsupported): nothing
    was sent, so a fallback or a later tier that can take the request is tried instead. `code` is the provider's
    own error code when it sent one (OpenAI's `error.code`: context_length_exceeded, content_filter, ...), which
    callers branch on, so the gateway passes it on. `call_cost_usd` is what the failed call's earlier attempts
    were billed (answers a cascade rejected, streams cut midway), which a budget must still count. `reached`: the
    request reached the provider, which bills it though no whole answer came (a read timeout while it was still
    working, an answer cut off after it began): the attempt is recorded at its estimated prompt, not at $0.
    `billed_tokens`: the input tokens the provider counted for the parts of a request that did answer before one
    failed (a Bedrock embeddings request is several calls), recorded instead of 0 or the estimate. `unsent_calls`:
    how many of such a request's calls were never sent because one failed first (a rate limit gives them back).
    `innererror`:
    the `error.innererror` an OpenAI-format API sent (Azure's content filter: which filter caught the prompt), which
    the gateway passes on as it came. `upstream_param`: the `error.param` an OpenAI-format API sent (the field it
    refused: `temperature`), which the gateway passes on to a caller of OpenAI's API, whose fields it names; unlike
    `param`, the request was sent. `context_window`: a client error saying the prompt does not fit the model's
    context window (OpenAI's `context_length_exceeded`, Anthropic's "prompt is too long", Bedrock's "Input is too
    long"): not the request's fault as another 4xx is, since a model with a larger window may take it, so the call
    moves on to the next model of its chain, then the next tier up, instead of ending; its `kind` stays
    `client_error` (the ledger's outcome, the status a caller gets when no model could take it)."""

    call_cost_usd: Decimal = Decimal(0)
    billed_tokens: int | None = None
    unsent_calls: int = 0
    innererror: dict[str, Any] | None = None
    upstream_param: str | None = None

    def __init__(
        self,
        message: str,
        kind: str = "server_error",
        retry_after: float | None = None,
        status: int | None = None,
        param: str | None = None,
        retryable: bool | None = None,
        refused: Any = None,
        code: str | None = None,
        reached: bool = False,
        context_window: bool = False,
        also: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.reached = reached
        self.retry_after = retry_after
        self.status = status
        self.param = param
        self._retryable = retryable
        self.refused = refused
        self.code = code
        self.context_window = context_window
        self.also = also  # a second field a mapping's refusal names (`also`, in backticks): sent together, refused

    def named(self, rename: Callable[[str], str]) -> str:
        """The message with the fields a mapping's refusal names (`param`, first, and `also`) as `rename` names them:
        where the caller of an ingress put them."""
        text = str(self) if self.param is None else str(self).replace(self.param, rename(self.param), 1)
        return text if self.also is None else text.replace(f"`{self.also}`", f"`{rename(self.also)}`", 1)

    @property
    def unsent(self) -> bool:
        """Refused by Tokenomy before any call: a check found what the model cannot take (`refused`), or its API's
        mapping has no place for a field (`param`). Nothing was sent, so another model (a fallback, the next tier)
        that takes the request is tried instead of failing the call."""
        return self.refused is not None or self.param is not None

    @property
    def quota_spent(self) -> bool:
        """OpenAI's 429 `insufficient_quota`: the account behind the model has no quota or credit left, which no wait
        brings back (OpenAI's advice: do not retry it), unlike a rate limit's 429."""
        return self.status == 429 and self.code == "insufficient_quota"

    @property
    def retryable(self) -> bool:
        if self._retryable is not None:
            return self._retryable
        return self.kind in ("throttled", "server_error", "timeout") and not self.quota_spent

    def not_retried_for_budget(self, spent: Decimal, why: str) -> ProviderError:
        """This error as a call's last, when its budget refused another attempt after its failed attempts were billed
        (`CallCost.retry_refused`, which says `why`: no room, or it could not be checked): not retryable, carrying what
        the call paid. Nothing more was sent, so it is no ledger row."""
        exc = ProviderError(
            f"{self}; not tried again: {why} after this call's failed attempts were billed ({usd(spent, 'record')})",
            kind=self.kind,
            status=self.status,
            code=self.code,
            retryable=False,
            context_window=self.context_window,
        )
        exc.call_cost_usd = spent
        exc.innererror, exc.upstream_param = self.innererror, self.upstream_param
        return exc


# The status of a call whose caller left before it was done (nginx's "client closed request"): nobody reads it.
CALLER_LEFT = 499


def caller_left_error(spent: Decimal, last: ProviderError | None) -> ProviderError:
    """A call ended unsent because its caller left while it waited to try again (a retry, a fallback, a Retry-After,
    a rate limiter): no attempt was sent for nobody, so it is no ledger row; it carries what the call paid."""
    after = f" after: {last}" if last is not None else ""
    exc = ProviderError(
        f"the caller closed the connection; the call was not tried again{after}",
        kind="client_error",
        status=CALLER_LEFT,
        code="caller_left",
        retryable=False,
    )
    exc.call_cost_usd = spent
    return exc


def usd_figure(option: str, value: Any, what: str = "a price in USD", example: str = "") -> Decimal:
    """A USD figure given as `option`, as a Decimal: finite, >= 0 and under MAX_USD, else a ConfigError naming the
    option and the bounds (NaN and infinity were taken, 1e300 printed as a 301-digit cost)."""
    number = to_decimal(value)
    if not number.is_finite() or not 0 <= number < MAX_USD:
        raise ConfigError(
            f"{option} {typed(value)}: give {what}, a finite number >= 0 and under {MAX_USD:,}"
            + (f", e.g. {example}" if example else "")
        )
    return number
