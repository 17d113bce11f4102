"""The three forms a batch input line takes (a Bedrock batch line, an OpenAI batch line, a plain record): how a
line's keys tell them apart, what each is called in messages, and the keys each may hold.

Apart from formats.py because the readers of a line's messages (line_messages.py) name the forms in their fixes too,
and formats.py reads a line with those readers: both import this, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

# The three line forms, as named in messages so a user sees which one a line was read as.
FORMS = {
    "bedrock": "a Bedrock batch line (recordId, modelInput)",
    "openai": "an OpenAI batch line (custom_id, method, url, body)",
    "plain": "a plain record (id, prompt or messages)",
}


def line_form(obj: dict[str, Any]) -> str:
    """bedrock | openai | plain, from the keys that only one form has."""
    if "recordId" in obj or "modelInput" in obj:
        return "bedrock"
    if any(key in obj for key in ("custom_id", "body", "url", "method")):
        return "openai"
    return "plain"


# Every key a plain record may hold; each backend sends each of them in its provider's own field. Any other was ignored
# without a word, so a record went out without the `model`, `top_p` or misspelt `max_token` its line asked for.
PLAIN_KEYS = ("id", "prompt", "messages", "system", "max_tokens", "temperature")


# The keys of an OpenAI or Bedrock line (each provider's documented input line has no other), and where a parameter
# put beside them belongs. The line sent is built from these keys, so any other would be dropped unsaid.
LINE_KEYS = {"openai": ("custom_id", "method", "url", "body"), "bedrock": ("recordId", "modelInput")}
PARAMETERS_GO_IN = {"openai": "move a request parameter into body", "bedrock": "move a model parameter into modelInput"}


def refuse_other_line_keys(obj: dict[str, Any], form: str) -> None:
    """An OpenAI or Bedrock line with a key its form has not is refused, naming the key and where it belongs."""
    unknown = next((key for key in obj if key not in LINE_KEYS[form]), None)
    if unknown is not None:
        raise ValueError(
            f"{unknown}: not a key of {FORMS[form]}, so it would not be sent; remove it, or {PARAMETERS_GO_IN[form]}"
        )


# Other providers' own batch lines, which no form reads: an Anthropic Message Batches request (`custom_id`, `params`)
# was read as an OpenAI line and refused for its `params` with "move a request parameter into body", and a Gemini
# (`key`, `request`) or Vertex AI (`request`) line as a plain record missing its id, neither saying what the line is.
WRITE_IT_AS = f"write it as {FORMS['openai']}, {FORMS['bedrock']} or {FORMS['plain']}, which every backend takes"


def refuse_other_providers_lines(obj: dict[str, Any]) -> None:
    """A line in Anthropic's, Gemini's or Vertex AI's own batch form is refused, naming the key that shows it and the
    forms that are read."""
    if "params" in obj and "custom_id" in obj and "body" not in obj:
        raise ValueError(
            f"params: an Anthropic Message Batches request (custom_id, params) is not a line this reads; {WRITE_IT_AS}"
        )
    if "request" in obj and not any(key in obj for key in (*LINE_KEYS["openai"], *LINE_KEYS["bedrock"], *PLAIN_KEYS)):
        which = "a Gemini batch line (key, request)" if "key" in obj else "a Vertex AI batch line (request)"
        raise ValueError(f"request: {which} is not a line this reads; {WRITE_IT_AS}")
