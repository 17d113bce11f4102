"""A sample of each content block of Anthropic's Messages request (the installed `anthropic` package's
ContentBlockParam types), in the turns that make it a request, with a sample for each of its optional keys: for the
tests that send every key of every block and check it is carried or refused by name. A block type or key a newer SDK
adds fails them until it gets a sample here."""

from __future__ import annotations

import typing

import typing_extensions
from anthropic.types import user_message_param

PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
TEXT_DOCUMENT = {"type": "text", "media_type": "text/plain", "data": "A short report."}
ASK = {"role": "user", "content": "hi"}
USE = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
SEARCH_USE = {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}}
FOUND = [{"type": "web_search_result", "url": "https://example.com", "title": "T", "encrypted_content": "e"}]

# Per block type: the turns holding it (the block is the first of the turn it is in, which the test names as the
# caller's path), and its index among the turns.
BLOCKS: dict[str, tuple[list[dict[str, typing.Any]], int]] = {
    "TextBlockParam": ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], 0),
    "ImageBlockParam": (
        [{"role": "user", "content": [{"type": "image", "source": PNG}, {"type": "text", "text": "?"}]}],
        0,
    ),
    "DocumentBlockParam": (
        [{"role": "user", "content": [{"type": "document", "source": TEXT_DOCUMENT}, {"type": "text", "text": "?"}]}],
        0,
    ),
    "SearchResultBlockParam": (
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "search_result",
                        "source": "https://example.com",
                        "title": "T",
                        "content": [{"type": "text", "text": "found"}],
                    },
                    {"type": "text", "text": "?"},
                ],
            }
        ],
        0,
    ),
    "ThinkingBlockParam": (
        [
            ASK,
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "a"}],
            },
            ASK,
        ],
        1,
    ),
    "RedactedThinkingBlockParam": (
        [
            ASK,
            {
                "role": "assistant",
                "content": [{"type": "redacted_thinking", "data": "abc"}, {"type": "text", "text": "a"}],
            },
            ASK,
        ],
        1,
    ),
    "ToolUseBlockParam": ([ASK, {"role": "assistant", "content": [USE]}, {"role": "user", "content": [RESULT]}], 1),
    "ToolResultBlockParam": ([ASK, {"role": "assistant", "content": [USE]}, {"role": "user", "content": [RESULT]}], 2),
    "ServerToolUseBlockParam": (
        [
            ASK,
            {
                "role": "assistant",
                "content": [
                    SEARCH_USE,
                    {"type": "web_search_tool_result", "tool_use_id": "s1", "content": FOUND},
                    {"type": "text", "text": "a"},
                ],
            },
            ASK,
        ],
        1,
    ),
}
EXECUTED = {"stdout": "", "stderr": "", "return_code": 0, "content": []}
# A server tool's result: the server_tool_use it answers (by tool name) and the result block, after it in one turn.
SERVER_RESULTS: dict[str, tuple[str, dict[str, typing.Any]]] = {
    "WebSearchToolResultBlockParam": ("web_search", {"type": "web_search_tool_result", "content": FOUND}),
    "WebFetchToolResultBlockParam": (
        "web_fetch",
        {
            "type": "web_fetch_tool_result",
            "content": {
                "type": "web_fetch_result",
                "url": "https://example.com",
                "content": {"type": "document", "source": TEXT_DOCUMENT},
            },
        },
    ),
    "CodeExecutionToolResultBlockParam": (
        "code_execution",
        {"type": "code_execution_tool_result", "content": {"type": "code_execution_result", **EXECUTED}},
    ),
    "BashCodeExecutionToolResultBlockParam": (
        "bash_code_execution",
        {"type": "bash_code_execution_tool_result", "content": {"type": "bash_code_execution_result", **EXECUTED}},
    ),
    "TextEditorCodeExecutionToolResultBlockParam": (
        "text_editor_code_execution",
        {
            "type": "text_editor_code_execution_tool_result",
            "content": {"type": "text_editor_code_execution_view_result", "content": "x", "file_type": "text"},
        },
    ),
    "ToolSearchToolResultBlockParam": (
        "tool_search_tool_regex",
        {
            "type": "tool_search_tool_result",
            "content": {"type": "tool_search_tool_search_result", "tool_references": []},
        },
    ),
}
for _name, (_tool, _result) in SERVER_RESULTS.items():
    _use = {"type": "server_tool_use", "id": "s1", "name": _tool, "input": {}}
    _turn = {"role": "assistant", "content": [_use, {**_result, "tool_use_id": "s1"}, {"type": "text", "text": "a"}]}
    BLOCKS[_name] = ([ASK, _turn, ASK], 1)
BLOCKS["ContainerUploadBlockParam"] = (
    [{"role": "user", "content": [{"type": "container_upload", "file_id": "file_1"}, {"type": "text", "text": "?"}]}],
    0,
)
# Where the block is in its turn (a server tool's result is second, after its call).
POSITION = dict.fromkeys(SERVER_RESULTS, 1)

# Samples of the optional keys, by key (and by block type where the same key takes another shape).
KEYS: dict[str, typing.Any] = {
    "cache_control": {"type": "ephemeral"},
    "citations": {"enabled": True},
    "context": "From the finance team.",
    "title": "Report",
    "transformations": {"oversized_image": "downsize"},
    "caller": {"type": "direct"},
    "toolset_name": "toolset",
    "is_error": True,
}
BY_BLOCK: dict[tuple[str, str], typing.Any] = {
    ("TextBlockParam", "citations"): [
        {
            "type": "char_location",
            "cited_text": "x",
            "document_index": 0,
            "document_title": None,
            "start_char_index": 0,
            "end_char_index": 1,
        }
    ],
}


def block_types() -> dict[str, type]:
    """The ContentBlockParam types a user or assistant turn may hold, by name."""
    content = typing.get_type_hints(user_message_param.UserMessageParam)["content"]
    found: dict[str, type] = {}

    def walk(hint: typing.Any) -> None:
        for arg in typing.get_args(hint):
            if isinstance(arg, type) and hasattr(arg, "__required_keys__"):
                found[arg.__name__] = arg
            else:
                walk(arg)

    walk(content)
    return found


def optional_keys(block: type) -> list[str]:
    """The keys of `block` the SDK does not mark Required (its TypedDicts are total=False)."""
    hints = typing.get_type_hints(block, include_extras=True)
    return sorted(key for key, hint in hints.items() if typing.get_origin(hint) is not typing_extensions.Required)


# A sample of each optional key of a custom tool (the SDK's ToolParam).
TOOL_KEYS: dict[str, typing.Any] = {
    "allowed_callers": ["direct"],
    "cache_control": {"type": "ephemeral"},
    "defer_loading": True,
    "description": "Weather in a city",
    "eager_input_streaming": True,
    "input_examples": [{"city": "Paris"}],
    "strict": True,
    "type": "custom",
}


def tool_keys() -> list[str]:
    """ToolParam's keys but those it marks Required (its hints name a ClassVar its module does not import, so they
    are read as the SDK wrote them)."""
    from anthropic.types import tool_param

    hints = tool_param.ToolParam.__annotations__.items()
    return sorted(key for key, hint in hints if not getattr(hint, "__forward_arg__", str(hint)).startswith("Required["))
