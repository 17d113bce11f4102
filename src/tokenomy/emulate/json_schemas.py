"""Whether a tool's or an answer's JSON schema is one, checked as the real APIs check it: before any generation.

Anthropic's, Bedrock's, OpenAI's and Gemini's APIs each answer 400 for a schema their meta-schema refuses (a
`type` of 5, `properties` that is not an object, `required` that is not a list of names, ...). The emulators
check it when they read the request, so such a request gets that 400, not a 5xx from the engine that tried to
fill the schema in.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a valid JSON schema (under the draft its `$schema` names; 2020-12 when it names none,
    as the APIs read it), with the place in the schema; None when it is valid."""
    checker = validators.validator_for(schema, default=Draft202012Validator) if isinstance(schema, dict) else None
    try:
        (checker or Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        return f"{exc.message} (at {where})" if where else exc.message
    return None
