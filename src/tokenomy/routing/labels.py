"""Training labels from the ledger's cascade outcomes: a prompt the cheap tier answered is `weak`, one the
cascade had to escalate is `strong`. The output is the JSONL `tokenomy route train` reads."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from tokenomy.errors import UsageError
from tokenomy.routing.router import ESCALATED_TAG, PASSED_UP_ON_ERROR_TAG, PASSED_UP_TAG


def _tags(value) -> dict:
    return json.loads(value) if isinstance(value, str) and value else (value or {})


def cascade_routes(cfg) -> list[str]:
    """Routes whose policy is a cascade (the only ones whose outcomes say which tier was good enough)."""
    return sorted(
        name
        for name, route in cfg.routes.items()
        if route.policy and cfg.routing_policy(route.policy).type == "cascade"
    )


def cascade_labels(store, routes: list[str], since: datetime | None = None) -> list[dict]:
    """One {prompt, label, route} per request on the cascade `routes` with prompt text, in time order (see
    `cascade_export`)."""
    return cascade_export(store, routes, since)[0]


def cascade_export(store, routes: list[str], since: datetime | None = None) -> tuple[list[dict], dict[str, int]]:
    """The labels of `cascade_labels` and the requests left out: {"no_prompt_text": n, "blank_prompt": n,
    "not_judged": n}. A request the cheap tier never answered (passed up unsent, or past a tier that was down) is
    not judged: no cheap answer says whether the prompt needed the strong tier.

    Attempts of one request share the route and the prompt hash; an escalated attempt (tag "1") right after
    the first makes the request `strong`. Needs `store_prompts: true` (prompt text in the ledger). A request whose
    text is blank is left out too: `route train` refuses a blank prompt, so the whole file was refused.
    """
    sql = "SELECT route, tags, prompt_hash, prompt_text FROM usage_events WHERE route IS NOT NULL AND outcome = 'ok'"
    params: list = []
    if since is not None:
        sql += f" AND ts >= {store.placeholder}"
        params.append(since)
    rows = store.query(sql + " ORDER BY ts", params)
    if not routes:
        raise UsageError("no cascade routes to export: give --route NAME or a config whose routes use a cascade policy")
    labels: list[dict] = []
    latest: dict[tuple, dict] = {}
    skipped = {"no_prompt_text": 0, "blank_prompt": 0, "not_judged": 0}
    for row in rows:
        if row["route"] not in routes:
            continue
        key = (row["route"], row["prompt_hash"])
        tags = _tags(row["tags"])
        attempt = tags.get(ESCALATED_TAG)
        if not attempt and (tags.get(PASSED_UP_TAG) or tags.get(PASSED_UP_ON_ERROR_TAG)):
            skipped["not_judged"] += 1
            continue
        if not attempt:
            if row["prompt_text"] is None or not row["prompt_text"].strip():
                skipped["no_prompt_text" if row["prompt_text"] is None else "blank_prompt"] += 1
                continue
            latest[key] = {"prompt": row["prompt_text"], "label": "weak", "route": row["route"]}
            labels.append(latest[key])
        elif str(attempt) == "1" and key in latest:
            latest[key]["label"] = "strong"
    if not labels and skipped["no_prompt_text"]:
        raise UsageError(
            f"{skipped['no_prompt_text']} routed requests in the ledger have no prompt text; set `store_prompts: "
            "true` in tokenomy.yaml so cascade outcomes can become training labels"
        )
    if not labels and skipped["blank_prompt"]:
        raise UsageError(
            f"the {skipped['blank_prompt']} routed request(s) in the ledger have a blank prompt, which `route train` "
            "cannot learn from; nothing written"
        )
    return labels, skipped


def write_jsonl(labels: list[dict], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(row) + "\n" for row in labels))
