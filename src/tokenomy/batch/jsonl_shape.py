"""Whether a file handed in as batch JSONL is plainly something else (UTF-16 or UTF-32 text, a JSON array, one
pretty-printed object, CSV), named once for the whole file with the fix, instead of as one bad line per line.

Apart from formats.py, which reads a file's lines one by one, because this looks at the file as a whole before any
line is read.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenomy.errors import UsageError


def check_jsonl_shape(path: str | Path) -> None:
    """Raise UsageError naming the file's shape when it is plainly not JSONL."""
    expected = 'expected JSONL, one JSON object per line, e.g. {"id": "1", "prompt": "..."}'
    with open(path, "rb") as fh:
        start = fh.read(4)
    # UTF-16/32 (a Windows editor's "Unicode"): a BOM, or NUL bytes between ASCII characters. Read as UTF-8 its
    # first line looks like anything (it was called CSV); name the encoding and the fix instead.
    nul_pattern = len(start) == 4 and (start[1] == start[3] == 0 or start[0] == start[2] == 0)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")) or nul_pattern:
        width = "UTF-32" if start.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "UTF-16"
        raise UsageError(f"{path}: the file is {width}; save it as UTF-8 ({expected})")
    with open(path, "rb") as fh:
        raw = next((line for line in fh if line.strip()), b"")
    try:
        first = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        # Not text (a binary file, another encoding): a comma among its bytes called it CSV, quoting the bytes.
        # Each line is then reported as not UTF-8, with the fix.
        return
    if not first:
        return
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    else:
        if isinstance(head, list) and all(isinstance(item, dict) for item in head):
            raise UsageError(
                f"{path}: the first line is a JSON array of {len(head)} object(s); {expected} "
                f"(convert with: jq -c '.[]' {path} > records.jsonl)"
            )
        return  # the first line is JSON on its own: JSONL, whatever the later lines hold
    if first[0] in "[{":
        try:
            whole = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            whole = None
        if isinstance(whole, list):
            raise UsageError(
                f"{path}: this is a JSON array of {len(whole)} item(s); {expected} "
                f"(convert with: jq -c '.[]' {path} > records.jsonl)"
            )
        if isinstance(whole, dict):
            raise UsageError(
                f"{path}: this is one JSON object spread over several lines; {expected} "
                f"(convert with: jq -c . {path} > records.jsonl)"
            )
        if first[0] == "[":
            raise UsageError(f"{path}: starts with '[' like a JSON array; {expected}")
        return
    if "," in first or "\t" in first:
        raise UsageError(f"{path}: this is CSV (first line {first[:60]!r}); {expected}")
