"""Reading Gemini's proto3 JSON wire, for the gateway's Gemini routes (`gemini_inbound` and the modules it reads parts
with): each field by its camelCase name or its snake_case one, objects checked for fields the gateway does not carry,
strings and base64 checked, and media parts (`inlineData`, `fileData`) as image and document blocks: a `fileData`
document at a web URL is a document by URL, which a provider fetches itself (Claude, Gemini); at any other URI (the
Files API's, Cloud Storage's) a file id of the Gemini API, for Gemini models only. Anything malformed is a ValueError
naming its place, as the caller sent it.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from typing import Any

from tokenomy.messages import Block, DocumentBlock, ImageBlock, ProviderBlock
from tokenomy.providers.gemini_mapping import DOCUMENT_TYPES

CONTENT_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
PART_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature")
# The int64 fields of Google's Schema type (the Gemini API's and Vertex AI's), which proto3 JSON writes as text.
SCHEMA_INT64_FIELDS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
INT64_TEXT = re.compile(r"-?[0-9]+")
# A file of the Gemini API's Files API, by the URI it gives it (`file.uri`: https://generativelanguage.googleapis.com/
# v1beta/files/abc): an id for Gemini to read, not a URL another API can fetch (it needs the caller's key).
GEMINI_FILES = re.compile(r"https?://generativelanguage\.googleapis\.com/[^?#]*\bfiles/")
# A document's mime type -> its format: Gemini's names, and the standard ones for the same formats it takes too.
FORMATS = {mime: fmt for fmt, mime in DOCUMENT_TYPES.items()} | {"text/markdown": "md", "text/x-markdown": "md"}
# Media only Gemini reads (audio, video), which the content model has no block for: a part of Gemini's own
# (messages.ProviderBlock), carried to Gemini models as sent and refused, named, by every other.
GEMINI_MEDIA = ("audio/", "video/")
CARRIED = f"images, audio and video (to Gemini models) and {', '.join(FORMATS)}"


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def get(obj: dict[str, Any], name: str) -> Any:
    """Field `name` (camelCase) or its snake_case spelling, as proto3 JSON parsers accept both."""
    return obj[name] if name in obj else obj.get(snake(name))


def sent_name(obj: dict[str, Any], name: str) -> str:
    """Field `name` (camelCase) as the caller spelled it in `obj`: camelCase or snake_case."""
    return name if name in obj or snake(name) not in obj else snake(name)


def one_of(obj: dict[str, Any], where: str, first: str, second: str, why: str) -> None:
    """A ValueError naming both fields, as sent, when `obj` has both `first` and `second` (nulls are unset), which
    Gemini's API refuses in one request (`why`: what each is, `{first}` and `{second}` standing for their names, so
    the caller knows which to keep)."""
    if get(obj, first) is not None and get(obj, second) is not None:
        first, second = sent_name(obj, first), sent_name(obj, second)
        raise ValueError(
            f"{where}.{first} and {where}.{second}: Gemini takes one or the other, not both "
            f"({why.format(first=first, second=second)}); remove one"
        )


def object_field(value: Any, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    for key in value:
        if key not in fields and key not in {snake(f) for f in fields}:
            raise ValueError(f"{where}.{key}: not carried by the gateway; remove it")
    return value


def string_field(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value


def base64_field(value: Any, where: str) -> str:
    """Base64 text (proto3 JSON bytes: either alphabet), checked, in the standard alphabet."""
    text = string_field(value, where).replace("-", "+").replace("_", "/")
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise ValueError(f"{where}: not valid base64") from None
    return text


_INT64_SNAKE = {snake(name) for name in SCHEMA_INT64_FIELDS}


def schema_numbers(schema: Any, where: str) -> Any:
    """Google's Schema with its int64 fields (SCHEMA_INT64_FIELDS) written as text ("1", as proto3 JSON writes an
    int64 and Google's REST clients send it) as the numbers they are, in it and in the schemas it holds (properties,
    items, anyOf, defs), so a JSON Schema reader (another provider's API, the emulator's check) gets a number. Text
    that is no integer is a ValueError naming its place under `where`, as the caller sent it."""
    if not isinstance(schema, dict):
        return schema
    read: dict[str, Any] = {}
    for key, value in schema.items():
        here = f"{where}.{key}"
        if snake(key) in _INT64_SNAKE and isinstance(value, str):
            if not INT64_TEXT.fullmatch(value):
                raise ValueError(f"{here}: expected an integer (a number, or its digits as text), got {value!r}")
            value = int(value)
            if not 0 <= value < 2**63:  # each is a count (JSON Schema's are non-negative), held in an int64
                raise ValueError(f"{here}: expected a count from 0 to 2^63-1, got {value}")
        elif snake(key) in ("properties", "defs") and isinstance(value, dict):
            value = {name: schema_numbers(held, f"{here}.{name}") for name, held in value.items()}
        elif key == "items":
            value = schema_numbers(value, here)
        elif snake(key) == "any_of" and isinstance(value, list):
            value = [schema_numbers(held, f"{here}[{i}]") for i, held in enumerate(value)]
        read[key] = value
    return read


def media_block(part: dict[str, Any], where: str) -> Block:
    inline = get(part, "inlineData")
    if inline is not None:
        here = f"{where}.inlineData"
        inline = object_field(inline, here, ("mimeType", "data", "displayName"))
        mime = string_field(get(inline, "mimeType"), f"{here}.mimeType")
        data = base64_field(get(inline, "data"), f"{here}.data")
        name = _display_name(inline, here)
        if mime.startswith("image/"):
            _unnamed(name, here)
            return ImageBlock(media_type=mime, base64=data)
        if mime.startswith(GEMINI_MEDIA):
            _unnamed(name, here)
            inline_data = {"mime_type": mime, "data": data}
            return ProviderBlock("gemini", {"type": mime.split("/")[0], "inline_data": inline_data})
        if mime not in FORMATS:
            raise ValueError(f"{here}.mimeType: the gateway carries {CARRIED}, not {mime!r}")
        return DocumentBlock(FORMATS[mime], base64.b64decode(data), name)
    here = f"{where}.fileData"
    file = object_field(get(part, "fileData"), here, ("mimeType", "fileUri", "displayName"))
    uri = string_field(get(file, "fileUri"), f"{here}.fileUri")
    mime = get(file, "mimeType")
    if mime is not None:
        string_field(mime, f"{here}.mimeType")
    name = _display_name(file, here)
    on_the_web = uri.startswith(("https://", "http://")) and not GEMINI_FILES.match(uri)
    # A file of the Gemini API's (its Files API, Cloud Storage) reaches Gemini only: another API would fetch it as a
    # link and fail. A link on the web is any provider's to fetch.
    file_api = None if on_the_web else "gemini"
    if mime is None:  # Gemini reads the type from the file; a link's name may still say it is a document
        guessed = mimetypes.guess_type(uri.split("?", 1)[0])[0] if on_the_web else None
        if guessed is None or guessed not in FORMATS:  # an image, as a link without a type most often is
            _unnamed(name, here)
            return ImageBlock(url=uri, file_api=file_api)  # (sent to Gemini without a type, as it came)
        mime = guessed
    if isinstance(mime, str) and mime.startswith("image/"):
        _unnamed(name, here)
        return ImageBlock(media_type=mime, url=uri, file_api=file_api)
    if isinstance(mime, str) and mime.startswith(GEMINI_MEDIA):
        _unnamed(name, here)
        return ProviderBlock("gemini", {"type": mime.split("/")[0], "file_data": {"file_uri": uri, "mime_type": mime}})
    if mime not in FORMATS:
        raise ValueError(f"{here}.mimeType: the gateway carries {CARRIED}, not {mime!r}")
    if on_the_web:
        return DocumentBlock(FORMATS[mime], name=name, url=uri)  # a document on the web, which a provider fetches
    return DocumentBlock(FORMATS[mime], name=name, file_id=uri, file_api="gemini")  # Gemini's own: to Gemini only


def _display_name(media: dict[str, Any], where: str) -> str | None:
    name = get(media, "displayName")
    return None if name is None else string_field(name, f"{where}.displayName")


def _unnamed(name: str | None, where: str) -> None:
    """An image has no name in the gateway's content model (a document's displayName is its name)."""
    if name is not None:
        raise ValueError(f"{where}.displayName: the gateway carries a name for documents only, not images; drop it")
