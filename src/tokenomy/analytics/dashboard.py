"""The cost dashboard page: one template and one script for the gateway's /dashboard and `report --html`.

The page and `tokenomy report --html` share one template and one script (static/dashboard.js, drawing
with the vendored Chart.js UMD build, MIT licence in static/): the gateway serves them as files
(its web routes are in tokenomy.gateway.dashboard_routes) and the page fetches
/dashboard/api/<section>; the report inlines script and data into a single file that opens offline.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tokenomy.analytics import dashboard_data
from tokenomy.analytics.dashboard_data import Filters

STATIC_FILES = {
    "chart.umd.min.js": "text/javascript",
    "console.js": "text/javascript",
    "requests.js": "text/javascript",
    "providers.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "chart.js.LICENSE.md": "text/markdown",
}
# The page's scripts in load order: Chart.js, the console panels, the request log, the provider view, then the
# page's main script.
SCRIPTS = ("chart.umd.min.js", "console.js", "requests.js", "providers.js", "dashboard.js")


@cache
def static_text(name: str) -> str:
    return (resources.files("tokenomy.analytics") / "static" / name).read_text(encoding="utf-8")


def page_html(api_base: str, scripts: str, form_attrs: str = "", header_links: str = "", head: str = "") -> str:
    """The page around `scripts`, fetching its data from `api_base` (empty when the data is inlined); `head`: more
    elements for its <head>."""
    return (
        static_text("dashboard.html")
        .replace("{{HEAD}}", head)
        .replace("{{API_BASE}}", api_base)
        .replace("{{FORM_ATTRS}}", form_attrs)
        .replace("{{HEADER_LINKS}}", header_links)
        .replace("{{SCRIPTS}}", scripts)
    )


def _inline_script(code: str) -> str:
    # "</script" in any letter case would end the element early, and "<!--" followed by "<script" would keep the
    # real end tag from ending it; in JavaScript strings "<\/script" and "<\!--" read as the same text.
    return "<script>" + re.sub(r"<(/script|!--)", r"<\\\1", code, flags=re.IGNORECASE) + "</script>"


def _inline_json(data: Any) -> str:
    # Ledger text (model names, tags, prompts) is anyone's: no "<" at all, so no markup can end the script.
    return json.dumps(data).replace("<", "\\u003c")


def report_html(store: Any, filters: Filters, config: Any = None) -> str:
    """The dashboard as one self-contained file: data, Chart.js and the page script inlined, filters hidden
    (`config`: a TokenomyConfig whose alert rules the open alerts evaluate)."""
    data = dashboard_data.collect(store, filters, config)
    scripts = "\n".join(
        [
            _inline_script("window.TOKENOMY_DATA = " + _inline_json(data) + ";"),
            *(_inline_script(static_text(name)) for name in SCRIPTS),
        ]
    )
    return page_html("", scripts, form_attrs="hidden")


def write_report_html(store: Any, filters: Filters, out: str | Path, config: Any = None) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(store, filters, config), encoding="utf-8")
    return path
