"""The worst case a gateway reserves for a request on one of its routes, measured on a gateway built from a config
(no server: `Gateway.worst_case` as the budget check calls it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tokenomy.config import parse_config
from tokenomy.gateway.state import Gateway
from tokenomy.gateway.worst_case import WorstCase
from tokenomy.messages import ChatRequest


def worst_case(config: dict[str, Any], name: str, request: ChatRequest, ledger: Path) -> WorstCase:
    """The worst case for `request` on the route (or model) `name` of a gateway serving `config`."""

    async def measure() -> WorstCase:
        gw = Gateway(parse_config(config), str(ledger))
        try:
            route = gw.route_for(name)
            return gw.worst_case(route, request, gw.policy_for(name, route))
        finally:
            await gw.client.aclose_upstreams()
            gw.client.close()
            gw.writer.close()

    return asyncio.run(measure())
