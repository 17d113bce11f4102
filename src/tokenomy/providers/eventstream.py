"""AWS event-stream message encoding (the binary framing ConverseStream responses use), for the servers that answer
in it: the Bedrock emulator and the gateway's ConverseStream route.

botocore ships only a decoder (`botocore.eventstream`), so this is the small encoder:
prelude (total length, headers length, prelude CRC32), headers, payload, message CRC32.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING = 7  # header value type: UTF-8 string with a 2-byte length


def _crc(data: bytes, seed: int = 0) -> int:
    return zlib.crc32(data, seed) & 0xFFFFFFFF


def encode_headers(headers: dict[str, str]) -> bytes:
    """String-typed headers, in order: name length (1 byte), name, type 7, value length (2 bytes), value."""
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if len(raw_name) > 255 or len(raw_value) > 65535:
            raise ValueError(f"event-stream header {name!r} is too long")
        out += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One complete event-stream message with both CRCs."""
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", _crc(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack("!I", _crc(body))


def event(event_type: str, data: dict[str, Any]) -> bytes:
    """A Bedrock stream event (`:message-type: event`) with a JSON payload."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(data, separators=(",", ":")).encode(),
    )


def exception(exception_type: str, message: str) -> bytes:
    """A modelled error inside the stream (`:message-type: exception`); botocore raises it as EventStreamError."""
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )
