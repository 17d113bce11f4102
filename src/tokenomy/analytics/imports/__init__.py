"""Usage from elsewhere into the ledger, one module per format: OpenTelemetry GenAI spans, AWS CUR 2.0 / FOCUS
Bedrock line items, the `llm` command-line tool's SQLite log, and provider billing data (OpenAI and Anthropic
usage/cost APIs, FOCUS exports of any cloud, Google Cloud billing exports).

Each importer returns the events it could read and one message per record it could not, naming the file
and the line, row or span and what to fix; good records are never dropped because of a bad one. Event ids
are derived from the source (trace/span id, line item, log id), so importing a file twice adds nothing.
"""

from tokenomy.analytics.imports.common import ImportResult
from tokenomy.analytics.imports.cur import import_cur, parse_bedrock_usage_type
from tokenomy.analytics.imports.focus import import_focus
from tokenomy.analytics.imports.gcp_billing import import_gcp_billing
from tokenomy.analytics.imports.llm_log import import_llm_log
from tokenomy.analytics.imports.otel import import_otel

# One file each; openai-usage and anthropic-usage read an API or several files (see their modules).
IMPORTERS = {
    "otel": import_otel,
    "cur": import_cur,
    "llm-log": import_llm_log,
    "focus": import_focus,
    "gcp-billing": import_gcp_billing,
}

__all__ = [
    "IMPORTERS",
    "ImportResult",
    "import_cur",
    "import_focus",
    "import_gcp_billing",
    "import_llm_log",
    "import_otel",
    "parse_bedrock_usage_type",
]
