"""Traffic as a per-minute series of input/output tokens, from the ledger, CloudWatch or CSV traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tokenomy.data import TRACES, bundled
from tokenomy.errors import ConfigError, one_line
from tokenomy.ledger.spend import is_billed_sql, is_call_sql
from tokenomy.ledger.store import LedgerStore

COLUMNS = ["input_tokens", "output_tokens", "requests"]


def _per_minute(frame: pd.DataFrame, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    """Sum per minute and fill silent minutes with zeros, so time-weighted figures see idle time."""
    if frame.empty:
        raise ConfigError("no traffic in the chosen window; widen --since/--until or check the filters")
    frame = frame.set_index("ts").sort_index()
    series = frame.resample("1min").sum()  # COLUMNS, and the ledger's cache columns
    return _whole_window(series, since, until).astype("int64")


def _utc(when: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _minute(when: datetime) -> pd.Timestamp:
    return _utc(when).floor("min")


def _whole_window(series: pd.DataFrame, since: datetime | None, until: datetime | None) -> pd.DataFrame:
    """A window asked for with since/until is the window: its silent minutes before the first call and after the
    last one are idle time too (minutes from since's up to, not including, until's)."""
    if since is None and until is None:
        return series
    if until is not None:
        until = min(until, datetime.now(UTC))  # minutes still to come were not observed (an --until next month)
    first = series.index[0] if since is None else min(_minute(since), series.index[0])
    last = series.index[-1] if until is None else max(_minute(until - timedelta(microseconds=1)), series.index[-1])
    filled = series.reindex(pd.date_range(first, last, freq="1min"), fill_value=0)
    filled.index.name = series.index.name
    return filled


def from_csv(path: str | Path, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    """Read a request trace: Azure format (TIMESTAMP,ContextTokens,GeneratedTokens) or ts,input_tokens,output_tokens.

    `path` may also name a packaged trace: azure-conv, azure-code or azure-conv-slice (gzip is read as is).
    With `since`/`until`, the requests in [since, until) over that window, as from the ledger.
    """
    path = bundled(TRACES[str(path)]) if str(path) in TRACES and not Path(path).exists() else Path(path)
    if not path.exists():  # read_csv's "[Errno 2] ..." read as if the file were not a trace
        raise ConfigError(f"{path}: trace file not found; give a trace CSV or a packaged trace: {', '.join(TRACES)}")
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # pandas ends a tokenizing error with a line break: the message would be two lines, the second ")".
        raise ConfigError(f"{path}: cannot read trace CSV ({one_line(exc)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the trace as UTF-8 CSV") from None
    names = {c.lower(): c for c in raw.columns}
    if {"timestamp", "contexttokens", "generatedtokens"} <= set(names):
        frame = pd.DataFrame(
            {
                "ts": raw[names["timestamp"]],
                "input_tokens": raw[names["contexttokens"]],
                "output_tokens": raw[names["generatedtokens"]],
            }
        )
    elif {"ts", "input_tokens", "output_tokens"} <= set(names):
        frame = pd.DataFrame(
            {
                "ts": raw[names["ts"]],
                "input_tokens": raw[names["input_tokens"]],
                "output_tokens": raw[names["output_tokens"]],
            }
        )
    else:
        raise ConfigError(
            f"{path}: unknown trace columns {list(raw.columns)}; expected TIMESTAMP,ContextTokens,"
            "GeneratedTokens (Azure) or ts,input_tokens,output_tokens"
        )
    if frame.empty:  # otherwise reported as "no traffic in the chosen window", which points at --since/--until
        raise ConfigError(f"{path}: no requests after the header line; give a trace with at least one row")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="mixed")
    bad_tokens = False
    for column in ("input_tokens", "output_tokens"):
        # Text such as "abc" becomes NaN here and is reported with the row instead of failing a comparison.
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
        bad_tokens = bad_tokens | frame[column].isna() | (frame[column] < 0) | (frame[column] % 1 != 0)
    bad = frame[frame["ts"].isna() | bad_tokens]
    if len(bad):
        first = int(bad.index[0]) + 2  # header is line 1
        raise ConfigError(
            f"{path}:{first}: bad timestamp or a token count that is not a whole number >= 0 "
            f"({len(bad)} such row(s)); fix or remove those rows"
        )
    for column in ("input_tokens", "output_tokens"):
        frame[column] = frame[column].astype("int64")
    frame["requests"] = 1
    if since is not None:
        frame = frame[frame["ts"] >= _utc(since)]
    if until is not None:
        frame = frame[frame["ts"] < _utc(until)]
    return _per_minute(frame, since, until)


def idle_window(since: datetime, until: datetime | None, columns: list[str]) -> pd.DataFrame:
    """Every minute of [since, until) (until: now if not given, nor later than now) without a token: a window that
    had no calls, for a reservation's idle watch (0% used is its finding, not a missing input)."""
    end = min(until, datetime.now(UTC)) if until is not None else datetime.now(UTC)
    if end <= since:
        raise ConfigError(f"--since {since:%Y-%m-%d %H:%M} is after now: the window has no minute to watch yet")
    minutes = pd.date_range(_minute(since), _minute(end - timedelta(microseconds=1)), freq="1min", name="ts")
    return pd.DataFrame(0, index=minutes, columns=columns, dtype="int64")


def from_ledger(
    store: LedgerStore,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    idle_ok: bool = False,
    warnings: list[str] | None = None,
) -> pd.DataFrame:
    """Per-minute tokens of successful calls in the ledger (all prompt tokens count toward capacity).

    Metered calls only: an imported bill's row is a provider-day's usage stamped at midnight, not one minute's
    traffic. Read as a minute, it made a peak of a whole day's tokens (and counted that day twice beside its calls).

    `idle_ok` (a reservation's utilisation): a window from `since` with no calls of `model` is every minute idle, not
    an error; if the window has calls of other models, `warnings` gets their names (the ledger keeps the id a call
    used: a `us.` profile is another name)."""
    p = store.placeholder
    # The model and window filters are kept apart: the error paths below reuse them with other clauses.
    model_filter: list[tuple[str, Any]] = [(f"model = {p}", model)] if model else []
    window: list[tuple[str, Any]] = [(f"ts >= {p}", since)] if since else []
    window += [(f"ts < {p}", until)] if until else []
    metered_ok = ["outcome = 'ok'", is_call_sql()]  # calls: no bill's day and no cache's storage row

    def where(*filters: list[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
        chosen = [f for group in filters for f in group]
        return [clause for clause, _ in chosen], [param for _, param in chosen]

    clauses, params = where(model_filter, window)
    rows = store.query(
        f"SELECT ts, input_tokens + cache_read_tokens + cache_write_tokens AS input_tokens, "
        f"output_tokens, 1 AS requests, cache_read_tokens, cache_write_tokens FROM usage_events "
        f"WHERE {' AND '.join(metered_ok + clauses)}",
        params,
    )
    if not rows and _billed_only(store, clauses, params):
        raise ConfigError(
            "the ledger has only imported bills' rows (a day's usage each, no per-minute traffic) for this model "
            "and window; size from calls it metered, a --trace or --cloudwatch"
        )
    if not rows and model:
        window_clauses, window_params = where(window)
        others = _other_models(store, metered_ok + window_clauses, window_params)
        if others and not (idle_ok and since is not None):
            raise ConfigError(f"no calls of model {model!r} in the window; the ledger's calls there are of: {others}")
        if others and warnings is not None:
            warnings.append(
                f"no calls of model {model!r} in the window, read as idle; the ledger's calls there are of: {others} "
                "(if the reservation served those, give --model as the ledger names it)"
            )
    if not rows and idle_ok and since is not None:
        return idle_window(since, until, [*COLUMNS, "cache_read_tokens", "cache_write_tokens"])
    # input_tokens counts cached prompt tokens too (they use capacity); the cache columns price their spill-over.
    frame = pd.DataFrame(rows, columns=["ts", *COLUMNS, "cache_read_tokens", "cache_write_tokens"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return _per_minute(frame, since, _window_end(since, until))


def _window_end(since: datetime | None, until: datetime | None) -> datetime | None:
    """The end of the ledger window asked for: --until, or now when --since is given alone (`--since 24h` is the last
    24 hours: the quiet time after the last call is part of it, not cut off there)."""
    return datetime.now(UTC) if until is None and since is not None else until


def _other_models(store: LedgerStore, clauses: list[str], params: list[Any]) -> str:
    """No call of the model asked for in the window: the models the window's calls were recorded under (the ledger
    keeps the id the call used, `us.` profile and all), to name rather than "no traffic" that sends the user to
    --since/--until; "" if there are none."""
    rows = store.query(
        f"SELECT DISTINCT model FROM usage_events WHERE {' AND '.join(clauses)} ORDER BY model LIMIT 11", params
    )
    return ", ".join(str(r["model"]) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")


def _billed_only(store: LedgerStore, clauses: list[str], params: list[Any]) -> bool:
    """Whether the window (`clauses` on model and time) holds rows of imported bills."""
    where = " AND ".join([is_billed_sql(), *clauses])
    return int(store.query(f"SELECT COUNT(*) AS n FROM usage_events WHERE {where}", params)[0]["n"]) > 0


def from_cloudwatch(
    model: str,
    region: str,
    since: datetime,
    until: datetime,
    endpoint_url: str | None = None,
    idle_ok: bool = False,
    warnings: list[str] | None = None,
) -> pd.DataFrame:
    """AWS/Bedrock InputTokenCount, OutputTokenCount, Invocations, InvocationThrottles by ModelId, per minute.

    `idle_ok` (a reservation's utilisation): no metrics in the window (Bedrock sends none for a minute without
    invocations) is every minute idle, with a warning in `warnings`, not an error."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url)
    metrics = {
        "input_tokens": "InputTokenCount",
        "output_tokens": "OutputTokenCount",
        "requests": "Invocations",
        "throttles": "InvocationThrottles",
    }
    queries = [
        {
            "Id": key,
            "ReturnData": True,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Bedrock",
                    "MetricName": name,
                    "Dimensions": [{"Name": "ModelId", "Value": model}],
                },
                "Period": 60,
                "Stat": "Sum",
            },
        }
        for key, name in metrics.items()
    ]
    values: dict[str, dict] = {key: {} for key in metrics}
    token = None
    while True:
        kwargs = {"MetricDataQueries": queries, "StartTime": since, "EndTime": until}
        if token:
            kwargs["NextToken"] = token
        try:
            page = client.get_metric_data(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise ConfigError(
                f"CloudWatch get_metric_data in {region} failed: {exc}; set AWS credentials (AWS_PROFILE "
                "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), --region and --endpoint-url as needed, "
                "or use --trace / the ledger instead"
            ) from None
        for result in page["MetricDataResults"]:
            for ts, value in zip(result["Timestamps"], result["Values"], strict=True):
                values[result["Id"]][pd.Timestamp(ts).tz_convert("UTC").floor("1min")] = value
        token = page.get("NextToken")
        if not token:
            break
    index = sorted(set().union(*[v.keys() for v in values.values()]))
    if not index:
        missing = (
            f"CloudWatch has no AWS/Bedrock metrics for ModelId={model} in {region} "
            f"between {since.isoformat()} and {until.isoformat()}"
        )
        if not idle_ok:
            raise ConfigError(missing)
        if warnings is not None:
            warnings.append(
                f"{missing}: read as no invocations, every minute idle (if the reservation did serve calls, "
                "check --model, the ModelId CloudWatch reports, and --region)"
            )
        return idle_window(since, until, list(metrics))
    frame = pd.DataFrame(
        {key: [values[key].get(ts, 0) for ts in index] for key in metrics}, index=pd.DatetimeIndex(index, name="ts")
    )
    frame = _whole_window(frame.resample("1min").sum(), since, until)
    return frame.astype("int64")


def window_hours(series: pd.DataFrame) -> float:
    """Length of the observed window in hours (at least one minute)."""
    return max(len(series), 1) / 60


def default_window() -> tuple[datetime, datetime]:
    until = datetime.now(UTC).replace(second=0, microsecond=0)
    return until - timedelta(days=7), until
